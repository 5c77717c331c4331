package dev.qvlm.calib;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class PartitionTest {
    @Test
    void greedyScanByHand() {
        // D(0,1)=.5 > .4 joins 0-1; mean(.5,.1)=.3 stops; D(2,3)=.6 joins; mean(.6,.7)=.65 joins 4; size cap 3 stops
        double[] d = {0.5, 0.1, 0.6, 0.7, 0.2};
        List<int[]> b = Partition.greedy(d, 6, 0.4, 3);
        assertEquals(3, b.size());
        assertArrayEquals(new int[]{0, 1}, b.get(0));
        assertArrayEquals(new int[]{2, 4}, b.get(1));
        assertArrayEquals(new int[]{5, 5}, b.get(2));
    }

    @Test
    void highThresholdGivesSingleLayers() {
        List<int[]> b = Partition.greedy(new double[]{0.1, 0.2, 0.3}, 4, 10, 3);
        assertEquals(4, b.size());
        for (int i = 0; i < 4; i++) assertArrayEquals(new int[]{i, i}, b.get(i));
    }

    @Test
    void maxBlockOneGivesSingleLayers() {
        assertEquals(3, Partition.greedy(new double[]{9, 9}, 3, 0, 1).size());
    }

    @Test
    void meanIsDefaultH0() {
        assertEquals(0.42, Partition.mean(new double[]{0.5, 0.1, 0.6, 0.7, 0.2}), 1e-12);
    }

    @Test
    void pearson() {
        assertEquals(1.0, EntropyCheck.pearson(new double[]{1, 2, 3}, new double[]{2, 4, 6}), 1e-12);
        assertEquals(-1.0, EntropyCheck.pearson(new double[]{1, 2, 3}, new double[]{3, 2, 1}), 1e-12);
    }
}
