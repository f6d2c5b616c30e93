"""Identity: the current user or service principal (SCIM Me)."""


def get_current_user(session, inputs):
    return session.get("/api/2.0/preview/scim/v2/Me")
