"""The SDK board: the port-I/O devices and host backends that freestanding guests built against `rrtool/guest/` see."""
