"""Streaming the audit log to a SIEM (docs/audit.md, "Streaming to a SIEM"): the sinks configured in
CODERAUTH_AUDIT_SINKS, the message formats (native and OCSF), and the delivery that `manage.py stream_audit` runs."""
