"""Documentation of the options every dashboard module shares (module_utils/ray_dashboard.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  dashboard_url:
    description: Base URL of the Ray dashboard (head node, port 8265).
    type: str
    default: http://127.0.0.1:8265
  token:
    description:
      - "Ray auth token, sent as C(Authorization: Bearer <token>). Needed when the cluster runs with C(RAY_AUTH_MODE=token)."
      - Surrounding whitespace (e.g. the newline of a token file) is removed.
      - Falls back to the E(RAY_AUTH_TOKEN) environment variable of the managed host.
      - Prefer O(token_file), which keeps the token out of the play's variables.
    type: str
  token_file:
    description:
      - Path of a file on the managed host that holds the Ray auth token, e.g. the one C(site.yml) writes
        (C(/opt/ray-cluster/secrets/ray_auth_token)). Surrounding whitespace is removed.
      - When set, it wins over O(token) and E(RAY_AUTH_TOKEN). A missing, unreadable or empty file fails the module.
    type: path
  validate_certs:
    description: Verify the TLS certificate when O(dashboard_url) uses https.
    type: bool
    default: true
  request_timeout:
    description: Timeout in seconds of each single HTTP request.
    type: float
    default: 10
'''
