"""The deployable SkyPilot connector service: settings, start-up and a preflight, around flytekit's server."""
