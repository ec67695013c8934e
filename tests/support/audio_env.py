"""Real audio without a sound card: a private PulseAudio with null sinks, reached through ALSA.

The machines that run the tests have no sound card, so a test that wants to hear what the gateway
plays, or to feed it audio, starts a PulseAudio daemon of its own (as root, in a temporary
folder) and adds a `module-null-sink` per "sound card". Each sink gets two ALSA PCMs, written to
an ALSA configuration file of this environment and so listed by PortAudio like any card:

- `<sink>_play`, output only: what is played into it goes into the sink;
- `<sink>_rec`, input only: records the sink's monitor, i.e. what was played into the sink.

So the gateway, configured with `<sink>_play` as a radio's transmit audio, is heard by a test
recording `<sink>_rec`, and a test playing into `<sink>_play` is heard by a gateway recording
`<sink>_rec`. `AudioEnv.environ` is what a subprocess (the gateway daemon) needs in its
environment to see the same daemon and PCMs; it is also applied to this process's os.environ.

Things found out on the way, which the code relies on:

- pulseaudio runs as root without `--system`: it only warns. It gets its own HOME,
  XDG_RUNTIME_DIR and PULSE_RUNTIME_PATH so that nothing of root's is used or written; clients
  find it through PULSE_SERVER (a unix socket with anonymous auth) and never autospawn one.
- ALSA_CONFIG_PATH replaces alsa-lib's configuration, so it lists the system alsa.conf first
  (which brings the `pulse` plugin's own hooks and the cards) and then this environment's file:
  alsa-lib splits the variable on ':'. The file is replaced, never rewritten in place, so that
  alsa-lib sees a new inode and re-reads it even within the same second; a new PortAudio
  initialisation then lists the new PCMs.
- PortAudio lists every top-level `pcm.NAME` of the configuration; `hint` sections are not
  needed for it (they are there for `aplay -L`). The `asym` wrapper with only one side makes
  PortAudio see each PCM in one direction only.
- A null sink nobody plays into renders in 2 s blocks, so a fresh recorder of its monitor would
  wait up to 2 s for its first sample and miss what was played in that time. Each sink therefore
  gets a loopback from its monitor into a discard sink, asking for 50 ms (10 ms costs twice the
  CPU), and is suspended and resumed once, which restarts its clock with the short block.
- Timing through a null sink is not a sound card's: the sink renders on its own clock up to a
  block ahead, so its monitor can deliver what was played before a card would have played it
  (a click written to a full-duplex PortAudio stream came back 0 ms later with the 50 ms
  keep-alive, 13 ms later with a 10 ms one). Levels and content are exact; latencies finer
  than ~50 ms are not something to test here.
- The null sinks are loaded with `norewinds`: a stream starting on a sink would otherwise make
  it rewind what it had rendered ahead, and the monitor's recorders would lose the first few ms
  of what was played.
- PulseAudio (14 and later) moves the streams of a sink that disappears to the default sink
  instead of ending them. The default sink and source are therefore a dedicated "orphan" null
  sink and its monitor: audio of a removed sink never leaks into another test's sink.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pytest

from gateway.hardware.sound.devices import SoundDevice, devices_of, open_portaudio

if TYPE_CHECKING:
    import pyaudio

Samples = npt.NDArray[np.float32]

ORPHAN_SINK = "audio_env_orphan"  # default sink: where streams of a removed sink are moved
DISCARD_SINK = "audio_env_discard"  # where the keep-alive loopbacks play
KEEPALIVE_LATENCY_MS = 50
FRAMES_PER_BUFFER = 480  # 10 ms at 48 kHz
PLAY_BUFFER_S = 0.05  # what `play` keeps in hand against a late scheduler
_SINK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PR_SET_PDEATHSIG = 1


def system_alsa_conf() -> Path:
    return Path(os.environ.get("ALSA_CONFIG_DIR", "/usr/share/alsa")) / "alsa.conf"


def missing_requirements() -> str | None:
    """Why this environment cannot run here, or None (the packages come from scripts/setup)."""
    for tool in ("pulseaudio", "pactl"):
        if shutil.which(tool) is None:
            return f"{tool} missing (Debian packages pulseaudio, pulseaudio-utils)"
    plugin = "libasound_module_pcm_pulse.so"
    if not [
        *Path("/usr/lib").glob(f"*/alsa-lib/{plugin}"),
        *Path("/usr/lib/alsa-lib").glob(plugin),
    ]:
        return "ALSA's pulse plugin missing (Debian package libasound2-plugins)"
    if not system_alsa_conf().is_file():
        return f"{system_alsa_conf()} missing"
    return None


def _die_with_parent() -> None:
    # Runs in the child before exec: the daemon gets SIGTERM if the test process dies without
    # tearing down (killed by a timeout, say), so no pulseaudio outlives the tests. (Strictly,
    # when the thread that started it ends: start an AudioEnv from a long-lived thread.)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Sink:
    name: str
    rate: int
    channels: int
    module: str
    keepalive_module: str


INSTRUMENT_NICE = -15  # the meter's and the sound server's priority: see raise_priority()
INSTRUMENT_RT_PRIORITY = 10


def raise_priority(pid: int, nice: int = INSTRUMENT_NICE) -> bool:
    """Every thread of `pid` to real-time priority (SCHED_FIFO INSTRUMENT_RT_PRIORITY, as rtkit
    gives a desktop's sound server), else to `nice` (Linux keeps both per thread; threads
    started later inherit their creator's). For the instruments, not the things tested or
    measured: the sound server, the players and recorders of the tests and the benchmark's meter
    must not lose samples to the CPU burners of a loaded run, or a gap would be blamed on the
    gateway (at nice -15 the meter still lost samples in every round under two burners); the
    gateway stays at normal priority and meets the load. Needs root; False when refused."""
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            _raise_thread(int(task.name), nice)
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        return False
    return True


def raise_this_thread() -> None:
    """The calling thread (a player or recorder) to the instruments' priority, before it opens
    its stream (PortAudio's and the pulse plugin's threads inherit it); quietly not without
    root."""
    with contextlib.suppress(PermissionError, ProcessLookupError):
        _raise_thread(threading.get_native_id(), INSTRUMENT_NICE)


def _raise_thread(tid: int, nice: int) -> None:
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(INSTRUMENT_RT_PRIORITY))
    except PermissionError:
        os.setpriority(os.PRIO_PROCESS, tid, nice)


class Recording:
    """A recording running in a thread; `result()` waits for it and returns its samples."""

    def __init__(self, pcm: str, frames: int, rate: int, channels: int) -> None:
        self.pcm = pcm
        self.rate = rate
        self.started = threading.Event()  # set once the stream delivered its first block
        self.started_at: float | None = None  # time.monotonic() when the first block arrived
        self._frames = frames
        self._channels = channels
        self._blocks: list[bytes] = []
        self._stop_at: float | None = None  # see stop_at()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"record {pcm}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pyaudio

        raise_this_thread()
        try:
            with open_portaudio() as audio:
                index = _device_index(audio, self.pcm, "input")
                stream = audio.open(
                    rate=self.rate,
                    channels=self._channels,
                    format=pyaudio.paFloat32,
                    input=True,
                    input_device_index=index,
                    frames_per_buffer=FRAMES_PER_BUFFER,
                )
                try:
                    remaining = self._frames
                    while remaining > 0 and not self._covers_stop():
                        count = min(FRAMES_PER_BUFFER, remaining)
                        self._blocks.append(stream.read(count, exception_on_overflow=False))
                        remaining -= count
                        if not self.started.is_set():
                            self.started_at = time.monotonic()
                            self.started.set()
                finally:
                    stream.close()
        except BaseException as error:  # handed to result()
            self._error = error
        finally:
            self.started.set()

    def stop_at(self, moment: float) -> None:
        """Ends the recording early, once it holds the sound up to `moment` (time.monotonic()):
        record for as long as the slowest run may need, and stop once what was wanted is in."""
        self._stop_at = moment

    def _covers_stop(self) -> bool:
        stop_at, started_at = self._stop_at, self.started_at
        if stop_at is None or started_at is None:
            return False
        recorded = sum(len(block) for block in self._blocks) // (4 * self._channels)
        return started_at + (recorded - FRAMES_PER_BUFFER) / self.rate >= stop_at

    def result(self, timeout: float | None = None) -> Samples:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"recording {self.pcm} did not finish in {timeout} s")
        if self._error is not None:
            raise self._error
        samples = np.frombuffer(b"".join(self._blocks), dtype=np.float32)
        return samples if self._channels == 1 else samples.reshape(-1, self._channels)


def _device_index(audio: pyaudio.PyAudio, pcm: str, direction: Literal["input", "output"]) -> int:
    devices: list[SoundDevice] = devices_of(audio)
    for device in devices:
        if device.name == pcm and device.channels(direction) > 0:
            return device.index
    listed = ", ".join(device.label for device in devices)
    raise LookupError(f"PortAudio lists no {direction} device {pcm!r}; it lists {listed}")


class AudioEnv:
    """A private PulseAudio daemon with named null sinks, and ALSA PCMs to play and record them.

    Use as a context manager, or `start()` and `close()`. Everything lives in `root`, a
    temporary folder removed on close.
    """

    orphan_sink = ORPHAN_SINK

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="crosspatch-audio-"))
        self.asoundrc = self.root / "asoundrc"
        self.log = self.root / "pulseaudio.log"
        self._sinks: dict[str, _Sink] = {}
        self._kept_pcms: set[str] = set()  # PCMs of removed sinks, still in the ALSA config
        self._process: subprocess.Popen[bytes] | None = None
        self._saved_environ: dict[str, str | None] = {}
        native = self.root / "native"
        self._environ = {
            "PULSE_SERVER": f"unix:{native}",
            "PULSE_COOKIE": str(self.root / "cookie"),
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
            "ALSA_CONFIG_PATH": f"{system_alsa_conf()}:{self.asoundrc}",
        }
        for value in self._environ.values():
            if " " in value:  # alsa-lib splits ALSA_CONFIG_PATH on spaces too
                raise RuntimeError(f"temporary folder {self.root} has a space in its path")

    # --- the daemon -----------------------------------------------------------------------------

    @property
    def environ(self) -> dict[str, str]:
        """Variables a client process needs to reach this daemon and these ALSA PCMs."""
        return dict(self._environ)

    def start(self) -> AudioEnv:
        home = self.root / "home"
        runtime = self.root / "runtime"
        home.mkdir()
        runtime.mkdir(mode=0o700)
        (self.root / "client.conf").write_text("autospawn = no\n")
        native = self.root / "native"
        flags = "source_dont_move=true sink_dont_move=true"
        (self.root / "default.pa").write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={native}\n"
            # The CLI protocol can end a client's stream (pactl cannot): see `unplug_sink`.
            f"load-module module-cli-protocol-unix socket={self.root / 'cli'}\n"
            f"load-module module-null-sink sink_name={ORPHAN_SINK} rate=48000 channels=2"
            f" format=float32le sink_properties=device.description={ORPHAN_SINK}\n"
            f"load-module module-null-sink sink_name={DISCARD_SINK} rate=48000 channels=2"
            f" format=float32le sink_properties=device.description={DISCARD_SINK}\n"
            f"load-module module-loopback source={ORPHAN_SINK}.monitor sink={DISCARD_SINK}"
            f" latency_msec={KEEPALIVE_LATENCY_MS} {flags}\n"
            f"set-default-sink {ORPHAN_SINK}\n"
            f"set-default-source {ORPHAN_SINK}.monitor\n"
        )
        self._write_asoundrc()
        daemon_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PULSE_", "ALSA_"))
            and key not in {"DISPLAY", "DBUS_SESSION_BUS_ADDRESS"}
        }
        daemon_env |= {
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "PULSE_RUNTIME_PATH": str(runtime / "pulse"),
            "PULSE_STATE_PATH": str(self.root / "state"),
        }
        command = [
            "pulseaudio",
            "-n",  # no default.pa of the system: only the modules of the file below
            f"--file={self.root / 'default.pa'}",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--high-priority=no",
            "--realtime=no",
            "--use-pid-file=no",
            "--log-level=info",
            f"--log-target=file:{self.log}",
        ]
        with (self.root / "pulseaudio.out").open("wb") as out:
            self._process = subprocess.Popen(
                command,
                env=daemon_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._wait_ready()
        # As a desktop's sound server runs (rtkit): under a loaded run's CPU burners, a sound
        # server at normal priority drops audio the gateway would be blamed for.
        raise_priority(self._process.pid)
        self._wake(ORPHAN_SINK)
        self._apply_environ()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"pulseaudio exited with {self._process.returncode}: {self._tail()}"
                )
            if (self.root / "native").exists():
                result = self._run_pactl("info")
                if result.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"pulseaudio did not answer in {timeout} s: {self._tail()}")
            time.sleep(0.05)

    def _tail(self) -> str:
        texts = []
        for path in (self.root / "pulseaudio.out", self.log):
            with contextlib.suppress(OSError):
                texts.append(path.read_text(errors="replace"))
        return " | ".join(line for text in texts for line in text.splitlines()[-15:])

    def _apply_environ(self) -> None:
        for key, value in self._environ.items():
            self._saved_environ.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_environ(self) -> None:
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ.clear()

    def close(self) -> None:
        """Stops the daemon, restores os.environ and removes the temporary folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._restore_environ()
        self._sinks.clear()
        self._kept_pcms.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> AudioEnv:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _run_pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self._environ},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def pactl(self, *args: str) -> str:
        """Runs pactl against this daemon; its output, or RuntimeError with its error."""
        result = self._run_pactl(*args)
        if result.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {result.stderr.strip() or result.stdout}")
        return result.stdout.strip()

    # --- sinks and their PCMs -------------------------------------------------------------------

    @property
    def sinks(self) -> tuple[str, ...]:
        return tuple(self._sinks)

    def add_sink(self, name: str, *, rate: int = 48000, channels: int = 2) -> str:
        """Adds a null sink (a sound card to the gateway) and its PCMs; returns the sink name."""
        _check_name(name)
        if name in self._sinks:
            raise ValueError(f"sink {name!r} exists already")
        module = self.pactl(
            "load-module",
            "module-null-sink",
            f"sink_name={name}",
            f"rate={rate}",
            f"channels={channels}",
            "format=float32le",
            "norewinds=true",
            f"sink_properties=device.description={name}",
        )
        try:
            keepalive = self.pactl(
                "load-module",
                "module-loopback",
                f"source={name}.monitor",
                f"sink={DISCARD_SINK}",
                f"latency_msec={KEEPALIVE_LATENCY_MS}",
                "source_dont_move=true",
                "sink_dont_move=true",
            )
            self._wake(name)
        except BaseException:
            self.pactl("unload-module", module)
            raise
        self._sinks[name] = _Sink(name, rate, channels, module, keepalive)
        self._kept_pcms.discard(name)
        self._write_asoundrc()
        return name

    def remove_sink(self, name: str, *, keep_pcms: bool = False) -> None:
        """Removes a sink and its PCMs, as if its USB sound card was unplugged.

        Streams still open on it are moved by PulseAudio to the orphan sink (see the module
        docstring). With `keep_pcms` its PCMs stay in the ALSA configuration, as a PCM of
        asound.conf that names a PulseAudio sink would: they are still listed, and fail to open.
        """
        sink = self._sinks.pop(name)
        with contextlib.suppress(RuntimeError):  # gone with its source already
            self.pactl("unload-module", sink.keepalive_module)
        self.pactl("unload-module", sink.module)
        if keep_pcms:
            self._kept_pcms.add(name)
        self._write_asoundrc()

    def unplug_sink(self, name: str) -> None:
        """Removes a sink as a USB sound card is unplugged: the clients' streams on it end with
        an error (an unplugged ALSA card answers ENODEV; PortAudio then stops the stream) instead
        of being moved to the orphan sink, and its PCMs stay listed but fail to open until
        `replug_sink`."""
        sink = self._sinks[name]
        sink_index = self._index("sinks", name)
        source_index = self._index("sources", f"{name}.monitor")
        commands = [
            f"kill-sink-input {fields[0]}"
            for fields in self._rows("sink-inputs")
            if fields[1] == sink_index and "protocol-native" in fields[3]
        ] + [
            f"kill-source-output {fields[0]}"
            for fields in self._rows("source-outputs")
            if fields[1] == source_index and "protocol-native" in fields[3]
        ]
        self._cli(commands)
        self.remove_sink(sink.name, keep_pcms=True)

    def replug_sink(self, name: str) -> None:
        """Brings back a sink removed by `unplug_sink`, under the same name and PCMs."""
        self.add_sink(name)

    def _rows(self, kind: str) -> list[list[str]]:
        listing = self.pactl("list", "short", kind)
        return [line.split("\t") for line in listing.splitlines() if line.strip()]

    def _index(self, kind: str, name: str) -> str:
        for fields in self._rows(kind):
            if fields[1] == name:
                return fields[0]
        raise RuntimeError(f"no {kind[:-1]} named {name}")

    def _cli(self, commands: list[str]) -> None:
        with socket.socket(socket.AF_UNIX) as cli:
            cli.settimeout(10)
            cli.connect(str(self.root / "cli"))
            cli.sendall("".join(f"{c}\n" for c in commands).encode())
            cli.shutdown(socket.SHUT_WR)
            replies = b""
            while chunk := cli.recv(4096):  # the daemon closes its side after our end of input
                replies += chunk
        if replies.strip():  # the CLI is silent on success
            raise RuntimeError(f"pulseaudio CLI {commands}: {replies.decode(errors='replace')}")

    def _wake(self, sink: str) -> None:
        # Restarts the null sink's clock, so that it renders in the keep-alive's short blocks
        # from now on instead of after the 2 s block it started with.
        self.pactl("suspend-sink", sink, "1")
        self.pactl("suspend-sink", sink, "0")

    @staticmethod
    def pcm_play(sink: str) -> str:
        """The ALSA PCM (and PortAudio device name) that plays into `sink`."""
        _check_name(sink)
        return f"{sink}_play"

    @staticmethod
    def pcm_record(sink: str) -> str:
        """The ALSA PCM (and PortAudio device name) that records what was played into `sink`."""
        _check_name(sink)
        return f"{sink}_rec"

    def _write_asoundrc(self) -> None:
        parts = [
            "# Written by tests/support/audio_env.py: one PCM per direction of each null sink.\n"
        ]
        for sink in dict.fromkeys([*self._sinks, *self._kept_pcms]):
            parts.append(
                f"pcm.{self.pcm_play(sink)} {{\n"
                "    type asym\n"
                f'    playback.pcm {{ type pulse device "{sink}" }}\n'
                f'    hint {{ show on description "plays into null sink {sink}" }}\n'
                "}\n"
                f"pcm.{self.pcm_record(sink)} {{\n"
                "    type asym\n"
                f'    capture.pcm {{ type pulse device "{sink}.monitor" }}\n'
                f'    hint {{ show on description "records null sink {sink}" }}\n'
                "}\n"
            )
        new = self.asoundrc.with_suffix(".new")
        new.write_text("".join(parts))
        new.replace(self.asoundrc)  # a new inode: alsa-lib re-reads it

    # --- playing and recording through PortAudio ------------------------------------------------

    def device_index(self, pcm: str, direction: Literal["input", "output"]) -> int:
        """PortAudio's index of a PCM now (a fresh enumeration)."""
        with open_portaudio() as audio:
            return _device_index(audio, pcm, direction)

    def play(self, pcm: str, samples: npt.ArrayLike, rate: int) -> None:
        """Plays float samples (frames, or frames x channels) to a PCM and waits until done.

        0.2 s of silence follows the samples: stopping a PortAudio stream on the pulse plugin
        can drop what is still buffered (seen: the last ~25 ms, with a 10 ms keep-alive).
        The stream keeps PLAY_BUFFER_S in hand: on a busy machine this process is not scheduled
        every 10 ms, and a player that underruns plays gaps the gateway would be blamed for.
        """
        import pyaudio

        data = np.ascontiguousarray(samples, dtype=np.float32)
        channels = 1 if data.ndim == 1 else data.shape[1]
        tail = np.zeros((rate // 5, channels) if data.ndim > 1 else rate // 5, np.float32)
        data = np.concatenate([data, tail])
        failed: list[BaseException] = []

        def player() -> None:  # on a thread of its own, at the instruments' priority
            raise_this_thread()
            try:
                with open_portaudio() as audio:
                    stream = audio.open(
                        rate=rate,
                        channels=channels,
                        format=pyaudio.paFloat32,
                        output=True,
                        output_device_index=_device_index(audio, pcm, "output"),
                        frames_per_buffer=round(rate * PLAY_BUFFER_S),
                    )
                    try:
                        stream.write(data.tobytes())
                        stream.stop_stream()  # returns once the buffered audio was played
                    finally:
                        stream.close()
            except BaseException as error:  # handed to the caller
                failed.append(error)

        thread = threading.Thread(target=player, name=f"play {pcm}", daemon=True)
        thread.start()
        thread.join()
        if failed:
            raise failed[0]

    def start_recording(
        self, pcm: str, seconds: float, rate: int, *, channels: int = 1, timeout: float = 10.0
    ) -> Recording:
        """Starts recording a PCM in a thread; returns once the first samples came in."""
        recording = Recording(pcm, round(seconds * rate), rate, channels)
        if not recording.started.wait(timeout):
            raise TimeoutError(f"recording {pcm} delivered nothing in {timeout} s")
        return recording

    def record(self, pcm: str, seconds: float, rate: int, *, channels: int = 1) -> Samples:
        """Records a PCM for `seconds`: float32 samples (frames, or frames x channels)."""
        return self.start_recording(pcm, seconds, rate, channels=channels).result(seconds + 10)


def _check_name(name: str) -> None:
    if not _SINK_NAME.fullmatch(name):
        raise ValueError(f"sink name {name!r}: use letters, digits and _ (ALSA and pactl syntax)")


@pytest.fixture(scope="module")
def audio_env() -> Iterator[AudioEnv]:
    """A running AudioEnv for one test module (its sinks are shared by the module's tests)."""
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"{reason}: run scripts/setup, which installs it")
    with AudioEnv() as env:
        yield env
