"""Running a site: the real-time loop and its one tick, the daemon, announcements, call
recordings and systemd notification.
"""
