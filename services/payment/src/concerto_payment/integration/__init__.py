"""The integration layer: where Concerto talks to payment service providers it does not own.

One adapter per provider (`cardpay.py`, `paynext.py`) behind one interface (`gateways.py`);
`layer.py` chooses the provider, retries, breaks circuits, fails over and records attempts."""
