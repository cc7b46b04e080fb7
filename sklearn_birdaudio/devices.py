"""Where torch computations run: ``device="auto"`` and friends."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"auto"`` (or ``None``) into CUDA when available, else CPU.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"``/``None``, or anything :class:`torch.device` accepts (``"cpu"``,
        ``"cuda:1"``).

    Returns
    -------
    torch.device
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}."
        ) from error
