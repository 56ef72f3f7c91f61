"""Running out of memory, told apart from other failures: it needs a smaller job, not other inputs."""

from __future__ import annotations

ADVICE = "use a smaller --batch-size or --samples (batch_size=, samples=), shorter sentences, or a device with more memory"


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says memory ran out: Python's MemoryError, torch's OutOfMemoryError (CUDA or
    other accelerators) or the CPU allocator's RuntimeError.

    >>> out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 bytes"))
    True
    """
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text)
