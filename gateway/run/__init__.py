"""Running a site: the real-time loop, the daemon, announcements, call recordings, systemd
notification and log lines.
"""
