"""The SPSC ring buffer with a real producer thread, and its overflow accounting."""

import threading
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtser.ringbuffer import RingBuffer


def test_real_producer_thread_delivers_every_sample_in_order():
    ring = RingBuffer(4096)
    total, block = 200_000, 160
    received = []

    def produce():  # never overruns the reader, however the threads are scheduled (overflow is tested below)
        for start in range(0, total, block):
            while ring.available() > ring.capacity - block:
                time.sleep(0.0001)
            ring.write(np.arange(start, start + block, dtype=np.float32))

    thread = threading.Thread(target=produce)
    thread.start()
    while thread.is_alive() or ring.available():
        received.append(ring.read()[:, 0])
        time.sleep(0.0005)
    thread.join()
    data = np.concatenate(received)
    assert ring.dropped == 0
    np.testing.assert_array_equal(data, np.arange(total, dtype=np.float32))


def test_stalled_consumer_drops_oldest_and_counts_it():
    ring = RingBuffer(1000)
    received = []
    writer_done = threading.Event()

    def produce():
        for start in range(0, 50_000, 100):
            ring.write(np.arange(start, start + 100, dtype=np.float32))
        writer_done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    writer_done.wait(10)  # the consumer is stalled for the whole production
    thread.join()
    received.append(ring.read()[:, 0])
    data = np.concatenate(received)
    assert len(data) == 1000
    assert ring.dropped == 49_000
    np.testing.assert_array_equal(data, np.arange(49_000, 50_000, dtype=np.float32))


def test_multichannel_frames_stay_together():
    ring = RingBuffer(8, channels=2)
    ring.write(np.array([[1, -1], [2, -2], [3, -3]], dtype=np.float32))
    np.testing.assert_array_equal(ring.read(), [[1, -1], [2, -2], [3, -3]])


@given(st.integers(1, 64), st.lists(st.tuples(st.integers(0, 100), st.booleans()), max_size=60))
@settings(max_examples=100, deadline=None)
def test_any_write_read_sequence_keeps_order_and_counts_losses(capacity, steps):
    ring = RingBuffer(capacity)
    written, got, counter = 0, [], 0
    for size, do_read in steps:
        ring.write(np.arange(counter, counter + size, dtype=np.float32))
        counter += size
        written += size
        if do_read:
            got.append(ring.read()[:, 0])
    got.append(ring.read()[:, 0])
    data = np.concatenate(got) if got else np.zeros(0)
    assert len(data) + ring.dropped == written
    assert np.all(np.diff(data) > 0)  # order kept, nothing duplicated
