"""What the proxy tells its operators: metrics, logs and the audit trail, naming no one."""
