"""CM108/CM119 USB sound-card GPIO: PTT out and COS in through Linux hidraw, and their port bank."""
