"""GovTalk envelope and Document Submission Protocol: pure code, no I/O."""

from __future__ import annotations
