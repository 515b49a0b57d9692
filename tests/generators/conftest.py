"""The test-only generator registers itself here, before the protocol tests are collected."""

import constant_generator  # noqa: F401 - registers "constant"
