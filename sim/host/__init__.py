"""The host side of the UART link: the client and the self-checking workload of each block."""
