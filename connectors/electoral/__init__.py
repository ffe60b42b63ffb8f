"""A simulated electoral registration service: notified when a citizen moves (ER-NOTIFY-MOVE)."""
