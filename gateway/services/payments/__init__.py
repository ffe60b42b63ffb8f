"""Payments in the manner of GOV.UK Pay: lifecycle, test cards, the service, webhooks, reports."""

from gateway.services.payments.service import PaymentError, PaymentService

__all__ = ["PaymentError", "PaymentService"]
