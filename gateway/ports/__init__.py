"""Ports as the engine sees them: the port contract, and the site's port assembly over simulated
radios, hardware radios (serial lines, CM108, CAT, sound cards) and network links.
"""
