"""Helpers the tests share: environments, emulators, the daemon harness and fakes.

Test modules import from here, never from one another; bench/ imports from here as well (run from
the repository root as `python -m bench.NAME`, so `tests.support` is a package).

- audio_env, mqtt_env: a private PulseAudio with null sinks, a real mosquitto and a watcher;
- emulators/: radios speaking each CAT protocol's real bytes over a pty, and modem lines over
  RFC 2217;
- daemon, daemon_links, daemon_mqtt, usrp: `crosspatch run` as a subprocess on a site of the
  test's, two gateways joined by a lossy relay, a site with MQTT, a USRP peer;
- cm108, sysfs, serial_loop, rigctld: a CM119 behind a pty, a fake sysfs, pyserial loop:// ports,
  a real rigctld;
- child_lines, full_disk, speech, waits, paths: a child's output line by line, a full tmpfs,
  speech-like audio, polling waits, where the repository is;
- leaks: the check that fails a test which leaves something running (registered in conftest.py).
"""
