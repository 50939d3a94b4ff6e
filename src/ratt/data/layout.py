"""The axis order of images in an array: read from the shape, never from the dtype.

A 4-D array of images is (N, C, H, W) (``nchw``) or (N, H, W, C) (``nhwc``). With
``data.layout=auto`` the channel axis is the one of size 1, 3 or 4 at the front or the back
(if ``data.channels`` is set, the one of that size); where both ends could be, the order
that gives square images is taken ((N, 1, 4, 4) is 4x4 grayscale, not 1x4 RGBA). A shape
that still allows both orders (such as (N, 3, 32, 3)) or neither is refused in one line
naming ``data.layout=nchw|nhwc``.
"""

from __future__ import annotations

from ratt.errors import UserError

CHANNEL_SIZES = (1, 3, 4)  # grayscale, RGB, RGBA
ORDERS = ("nchw", "nhwc")


def _channels_of(shape: tuple[int, ...], order: str) -> int:
    return shape[1] if order == "nchw" else shape[3]


def _is_square(shape: tuple[int, ...], order: str) -> bool:
    return shape[2] == shape[3] if order == "nchw" else shape[1] == shape[2]


def image_layout(
    shape: tuple[int, ...], layout: str = "auto", channels: int | None = None, where: str = ""
) -> str:
    """``nchw`` or ``nhwc``: the axis order of a 4-D image array of ``shape``.

    Args:
        shape: (N, A, B, C), the array's shape.
        layout: ``auto`` (from the shape), ``nchw`` or ``nhwc`` (said by the user: taken as is,
            any channel count).
        channels: the channel count the images must have (None: 1, 3 or 4).
        where: names the array in errors (``file.npz: x_train``).
    Raises:
        UserError: an ambiguous shape, no possible channel axis, or a ``layout`` whose channel
            axis is not of size ``channels``.
    """
    if len(shape) != 4:
        raise UserError(f"{where} has shape {tuple(shape)}; expected (N, H, W), (N, C, H, W) or (N, H, W, C)")
    sizes = (channels,) if channels is not None else CHANNEL_SIZES
    if layout in ORDERS:
        if channels is not None and _channels_of(shape, layout) != channels:
            raise UserError(
                f"{where} has shape {tuple(shape)}: read as data.layout={layout} it has "
                f"{_channels_of(shape, layout)} channels, not data.channels={channels}"
            )
        return layout
    fits = [order for order in ORDERS if _channels_of(shape, order) in sizes]
    square = [order for order in fits if _is_square(shape, order)]
    fits = square if len(fits) == 2 and len(square) == 1 else fits
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise UserError(
            f"{where} has shape {tuple(shape)}: the channels could be the axis of size {shape[1]} "
            f"(nchw) or the one of size {shape[3]} (nhwc); say which with data.layout=nchw|nhwc"
        )
    wanted = str(channels) if channels is not None else "1, 3 or 4"
    raise UserError(
        f"{where} has shape {tuple(shape)}: no channel axis of size {wanted} at the front or the "
        "back; say the axis order with data.layout=nchw|nhwc"
    )
