"""The Document Submission Protocol as the hub serves it: submit, poll, delete, list."""

from __future__ import annotations
