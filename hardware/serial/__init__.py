"""Serial modem lines: PTT on RTS/DTR, carrier from CTS/DSR/DCD/RI, and their port bank.

Imported as `gateway.hardware.serial`; `import serial` still means pyserial (absolute imports).
"""
