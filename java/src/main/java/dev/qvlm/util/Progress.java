package dev.qvlm.util;

import java.io.PrintStream;

/**
 * A progress bar with rate and ETA on stderr. On a terminal it redraws one line; otherwise (logs, CI) it prints a
 * line every 10 % so logs stay short. Silent when disabled.
 */
public final class Progress {
    private final String label;
    private final long total;
    private final PrintStream out;
    private final boolean tty;
    private final boolean enabled;
    private final long start = System.nanoTime();
    private long done;
    private long lastDraw;
    private int lastDecile = -1;

    public Progress(String label, long total, boolean enabled) {
        this.label = label;
        this.total = total;
        this.out = System.err;
        this.tty = System.console() != null;
        this.enabled = enabled;
    }

    public synchronized void step(String status) {
        done++;
        if (!enabled) return;
        long now = System.nanoTime();
        int decile = (int) (done * 10 / Math.max(1, total));
        if (tty) {
            if (now - lastDraw < 100_000_000L && done < total) return;
            lastDraw = now;
            out.print("\r" + line(status, true));
            if (done >= total) out.println();
        } else if (decile != lastDecile || done == total) {
            lastDecile = decile;
            out.println(line(status, false));
        }
        out.flush();
    }

    private String line(String status, boolean bar) {
        double secs = (System.nanoTime() - start) / 1e9;
        double rate = done / Math.max(1e-9, secs);
        double eta = (total - done) / Math.max(1e-9, rate);
        StringBuilder sb = new StringBuilder(label).append(' ');
        if (bar) {
            int w = 28, filled = (int) (w * done / Math.max(1, total));
            sb.append('[').append("=".repeat(filled)).append(filled < w ? ">" : "").append(" ".repeat(Math.max(0, w - filled - 1))).append("] ");
        }
        sb.append(String.format("%d/%d %3d%% %.1f it/s elapsed %s ETA %s", done, total, 100 * done / Math.max(1, total),
                rate, clock(secs), clock(eta)));
        if (status != null && !status.isEmpty()) sb.append("  ").append(status);
        return sb.toString();
    }

    public static String clock(double s) {
        long t = Math.round(s);
        return t >= 3600 ? String.format("%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String.format("%d:%02d", t / 60, t % 60);
    }

    public synchronized long done() {
        return done;
    }

    public double elapsedSeconds() {
        return (System.nanoTime() - start) / 1e9;
    }
}
