package dev.qvlm.serve;

/**
 * A request the server refuses or could not complete, sent as OpenAI's error JSON
 * {@code {"error": {"message", "type", "param", "code"}}} with an HTTP status.
 */
public final class ApiException extends RuntimeException {
    private final int status;
    private final String type;
    private final String param;
    private final String code;
    private final int retryAfterSeconds;

    public ApiException(int status, String type, String param, String code, String message, int retryAfterSeconds) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
        this.retryAfterSeconds = retryAfterSeconds;
    }

    /** 400 invalid_request_error naming the parameter at fault. */
    public static ApiException invalid(String param, String message) {
        return new ApiException(400, "invalid_request_error", param, null, message, 0);
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public String param() {
        return param;
    }

    public String code() {
        return code;
    }

    /** Seconds for a Retry-After header (429, 503), or 0 for none. */
    public int retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
