"""How the daemon reaches the malls: their HTTP APIs (and, for stock files, SFTP and FTPS)."""
