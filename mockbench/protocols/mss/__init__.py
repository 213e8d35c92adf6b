"""The MSSanté doors: SMTP submission (smtp.py, with its status table in errors.py) and IMAP (imap.py,
imap_wire.py). The XDM package itself is read in formats/xdm.py; delivery, mailboxes and recipients'
answers are the world's (world/mss.py)."""
