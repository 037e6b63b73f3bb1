"""Lock-free shared-memory channels between the estimation process and the torque process.

* ``LatestValueBuffer`` — one writer, any readers, always the newest value: a
  *seqlock*. The writer makes the sequence odd, writes the record, makes it even
  again; a reader copies the record and accepts the copy only if the sequence was
  even and unchanged around the copy. Neither side ever blocks the other.
* ``RecordRing`` — one writer, one reader, fixed-size records in order (telemetry
  out of the torque loop). The writer never waits: a reader that falls more than
  ``capacity`` records behind loses the oldest ones, and counts them.
* ``ControlBlock`` — a few int64 slots for requests and status (aligned 8-byte
  stores, atomic on x86-64 and AArch64).

Records are NumPy structured dtypes, so both processes agree on the layout by
construction. Memory ordering: the stores are issued in program order through
NumPy; x86-64 keeps store order (TSO). On weakly ordered CPUs (AArch64/Jetson) the
sequence check still rejects torn copies in practice, but this is not a formal
guarantee without barriers: the consumer also validates the record (finite values,
monotonic capture time) before use.
"""
from __future__ import annotations

from multiprocessing import shared_memory

import numpy as np

_HEADER_BYTES = 64  # one cache line for the sequence / write counter


def _open(name: str | None, size: int, create: bool) -> shared_memory.SharedMemory:
    if create:
        return shared_memory.SharedMemory(name=name, create=True, size=size)
    # Python 3.11 registers attached segments with the resource tracker too. Our attaching
    # processes are spawned children that share the creator's tracker, where a second
    # registration is a no-op and the creator's unlink() unregisters it: leave it alone.
    # (A process with its own tracker would have the segment unlinked when it exits.)
    shm = shared_memory.SharedMemory(name=name, create=False)
    return shm


class _ShmBacked:
    _shm: shared_memory.SharedMemory
    _owner: bool

    @property
    def name(self) -> str:
        return self._shm.name

    def close(self) -> None:
        """Detach; the creating side also unlinks the segment."""
        shm = getattr(self, "_shm", None)
        if shm is None:
            return
        self._release_views()
        shm.close()
        if self._owner:
            try:
                shm.unlink()
            except FileNotFoundError:
                pass
        self._shm = None  # type: ignore[assignment]

    def _release_views(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LatestValueBuffer(_ShmBacked):
    """Seqlock over one record of ``dtype`` in shared memory."""

    def __init__(self, dtype: np.dtype, name: str | None = None, create: bool = True) -> None:
        self.dtype = np.dtype(dtype)
        self._shm = _open(name, _HEADER_BYTES + self.dtype.itemsize, create)
        self._owner = create
        self._seq = np.ndarray((1,), dtype=np.int64, buffer=self._shm.buf, offset=0)
        self._rec = np.ndarray((1,), dtype=self.dtype, buffer=self._shm.buf, offset=_HEADER_BYTES)
        if create:
            self._seq[0] = 0
            self._rec[0] = np.zeros((), dtype=self.dtype)

    def _release_views(self) -> None:
        del self._seq, self._rec

    @classmethod
    def attach(cls, name: str, dtype: np.dtype) -> "LatestValueBuffer":
        return cls(dtype, name=name, create=False)

    @property
    def sequence(self) -> int:
        """Number of completed writes (the stored counter is twice that; odd while writing)."""
        return int(self._seq[0]) >> 1

    def write(self, record: np.ndarray) -> None:
        """Publish ``record`` (a 0-d or 1-element array of ``dtype``). Never blocks."""
        seq = self._seq
        seq[0] += 1          # odd: write in progress
        self._rec[0] = record
        seq[0] += 1          # even: complete

    def read(self, out: np.ndarray, max_tries: int = 100) -> int:
        """Copy the newest complete record into ``out`` (1-element array); return its write number.

        Returns 0 when nothing was written yet, -1 when no consistent copy was obtained in
        ``max_tries`` (the writer kept rewriting: the caller treats it like a stale value).
        """
        seq = self._seq
        rec = self._rec
        for _ in range(max_tries):
            s1 = int(seq[0])
            if s1 & 1:
                continue
            out[0] = rec[0]
            if int(seq[0]) == s1:
                return s1 >> 1
        return -1


class RecordRing(_ShmBacked):
    """Single-producer single-consumer ring of ``capacity`` records of ``dtype``."""

    def __init__(self, dtype: np.dtype, capacity: int, name: str | None = None, create: bool = True) -> None:
        if capacity <= 0:
            raise ValueError(f"RecordRing: capacity = {capacity} must be > 0")
        self.dtype = np.dtype(dtype)
        self.capacity = int(capacity)
        self._shm = _open(name, _HEADER_BYTES + self.dtype.itemsize * self.capacity, create)
        self._owner = create
        self._count = np.ndarray((1,), dtype=np.int64, buffer=self._shm.buf, offset=0)
        self._recs = np.ndarray((self.capacity,), dtype=self.dtype, buffer=self._shm.buf, offset=_HEADER_BYTES)
        if create:
            self._count[0] = 0
        self._read = 0
        self.lost = 0

    def _release_views(self) -> None:
        del self._count, self._recs

    @classmethod
    def attach(cls, name: str, dtype: np.dtype, capacity: int) -> "RecordRing":
        return cls(dtype, capacity, name=name, create=False)

    @property
    def written(self) -> int:
        return int(self._count[0])

    def push(self, record: np.ndarray) -> None:
        """Append one record (producer side). Never blocks; overwrites the oldest when full."""
        n = int(self._count[0])
        self._recs[n % self.capacity] = record
        self._count[0] = n + 1

    def slot(self) -> np.ndarray:
        """The next slot to fill in place (producer side); publish it with ``commit()``."""
        n = int(self._count[0])
        return self._recs[n % self.capacity: n % self.capacity + 1]

    def commit(self) -> None:
        self._count[0] = int(self._count[0]) + 1

    def drain(self, max_records: int | None = None) -> np.ndarray:
        """Copy out the records not read yet, oldest first (consumer side); counts lost ones."""
        n = int(self._count[0])
        start = self._read
        if n - start > self.capacity:
            self.lost += n - start - self.capacity
            start = n - self.capacity
        if max_records is not None:
            n = min(n, start + max_records)
        if n <= start:
            return np.empty(0, dtype=self.dtype)
        idx = np.arange(start, n) % self.capacity
        out = self._recs[idx].copy()
        # Records the producer may have overwritten while we copied are dropped, not trusted.
        n_after = int(self._count[0])
        oldest_valid = n_after - self.capacity
        if oldest_valid > start:
            cut = min(oldest_valid - start, len(out))
            self.lost += cut
            out = out[cut:]
        self._read = n
        return out


class ControlBlock(_ShmBacked):
    """``n_slots`` int64 slots shared between processes (requests one way, status the other)."""

    def __init__(self, n_slots: int, name: str | None = None, create: bool = True) -> None:
        self._shm = _open(name, 8 * n_slots, create)
        self._owner = create
        self.slots = np.ndarray((n_slots,), dtype=np.int64, buffer=self._shm.buf, offset=0)
        if create:
            self.slots[:] = 0

    def _release_views(self) -> None:
        del self.slots

    @classmethod
    def attach(cls, name: str, n_slots: int) -> "ControlBlock":
        return cls(n_slots, name=name, create=False)

    def __getitem__(self, i: int) -> int:
        return int(self.slots[i])

    def __setitem__(self, i: int, value: int) -> None:
        self.slots[i] = value
