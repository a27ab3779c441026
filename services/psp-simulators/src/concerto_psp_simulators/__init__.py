"""Two simulated payment service providers (PSPs): stand-ins for external systems Concerto does
not own, with deliberately different API shapes, so the payment context's integration layer has
something real to talk to over HTTP.

- cardpay (port 8201): a "charges API"; an Idempotency-Key header makes a retry a replay.
- paynext (port 8202): a "payments API"; the merchant reference makes a retry a replay.

Both keep a ledger in SQLite (GET /_admin/ledger) and take faults at run time
(PUT /_admin/faults): outage, latency, errors, timeouts and dropped responses.

Run one with `python -m concerto_psp_simulators.cardpay` (or `.paynext`).
"""
