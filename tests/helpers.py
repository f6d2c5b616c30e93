"""Helpers shared by the tests."""


def fresh_sp(emulator):
    """A new service principal connection (its own session and token cache)."""
    client_id, secret = emulator.add_service_principal()
    return {"type": "service_principal", "token_url": emulator.token_url, "scopes": "all-apis",
            "client_id": client_id, "client_secret": secret}
