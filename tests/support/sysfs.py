"""A fake sysfs laid out like the real one: USB devices, their sound cards and hidraw nodes."""

from __future__ import annotations

from pathlib import Path

PCI = "devices/pci0000:00/0000:00:14.0"


def usb_device(sys: Path, port: str, vid: int, pid: int, product: str) -> Path:
    device = sys / PCI / "usb1" / port
    device.mkdir(parents=True)
    (device / "idVendor").write_text(f"{vid:04x}\n")
    (device / "idProduct").write_text(f"{pid:04x}\n")
    (device / "product").write_text(f"{product}\n")
    return device


def sound_card(sys: Path, parent: Path, number: int, card_id: str) -> None:
    card = parent / "sound" / f"card{number}"
    card.mkdir(parents=True)
    (card / "id").write_text(f"{card_id}\n")
    (card / "number").write_text(f"{number}\n")
    (card / f"pcmC{number}D0p").mkdir()
    link = sys / "class" / "sound" / f"card{number}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("../..") / card.relative_to(sys))
    # The class directory also holds controlCn and pcm devices: not cards.
    (sys / "class" / "sound" / f"controlC{number}").symlink_to(
        Path("../..") / card.relative_to(sys)
    )


def hidraw_node(device: Path, interface: str, hid: str, name: str) -> None:
    node = device / interface / hid / "hidraw" / name
    node.mkdir(parents=True)
    (node / "dev").write_text("247:0\n")
