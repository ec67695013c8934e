"""Sound cards through PortAudio: device lists, the radios' audio streams and the frame pacer."""
