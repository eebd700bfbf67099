"""Golden test: every endpoint and CLI data command against recorded answers (issue #16)."""
