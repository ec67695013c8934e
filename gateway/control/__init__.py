"""The control plane: who may switch which patch, consent, audit, and the transports' front door
(the command router, the local control socket), the site's status and the persisted patch state.
"""
