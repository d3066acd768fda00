"""The API's routes, one module per concept: health and metrics, apps, releases and deployments, actions."""
