"""Secure mail: council-to-citizen messages by enrolment identifier, encrypted at rest."""
