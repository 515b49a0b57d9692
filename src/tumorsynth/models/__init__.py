"""Networks (MONAI configured) and checkpoint I/O for learned components. Needs the ``torch``
extra; nothing here is imported by the synthesis core."""
