package dev.qvlm;

/**
 * An error caused by the user's input (a file, a flag, a shape) rather than by a bug. The CLI prints its message
 * alone, without a stack trace, and exits with code 2. Messages name the culprit (file, tensor, line, flag) and
 * say what was expected.
 */
public class QvlmException extends RuntimeException {
    public QvlmException(String message) {
        super(message);
    }

    public QvlmException(String message, Throwable cause) {
        super(message, cause);
    }
}
