"""Timing and memory helpers shared by the benchmark scripts."""

import time


def best_seconds(function, repeats: int = 3, warm_up: bool = True) -> float:
    """Fastest of ``repeats`` calls of ``function``, in seconds (these machines are noisy)."""
    if warm_up:
        function()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def memory_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_memory() -> None:
    """Reset ``VmHWM`` to the current resident size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def write_between_markers(path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in a file."""
    import re
    from pathlib import Path

    path = Path(path)
    content = path.read_text()
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
    if not pattern.search(content):
        raise SystemExit(f"{path}: no <!-- {name}:begin --> ... <!-- {name}:end --> markers")
    path.write_text(pattern.sub(lambda match: match[1] + text + match[2], content))


def publish(text: str, docs, name: str) -> None:
    """Print a benchmark's tables and, when ``docs`` is given, write them between its markers."""
    print(text)
    if docs:
        write_between_markers(docs, name, text)
        print(f"Written to {docs}")
