package dev.qvlm.calib;

/** One calibration prompt: token ids with the image tokens expanded, and the image's pixel values (or null). */
public record CalibSample(String id, int[] ids, float[] pixels) {}
