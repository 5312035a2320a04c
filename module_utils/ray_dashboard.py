# -*- coding: utf-8 -*-
# Shared client for the Ray dashboard REST API (port 8265), used by the ray_* modules.
from __future__ import annotations

import http.client
import json
import re
import urllib.error
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

DEFAULT_DASHBOARD_URL = 'http://127.0.0.1:8265'
USER_AGENT = 'ansible-ray-compose'
JOB_TERMINAL_STATES = frozenset(('SUCCEEDED', 'FAILED', 'STOPPED'))
_EXCERPT_LEN = 300
SERVE_APPS_PATH = '/api/serve/applications/'
# Seconds a PUT of the Serve config may take (it starts Serve's controller on a fresh head).
SERVE_PUT_TIMEOUT = 60
# Top-level Serve settings that a PUT must carry over: the PUT replaces the whole Serve config.
SERVE_TOP_LEVEL_KEYS = ('proxy_location', 'http_options', 'grpc_options', 'target_capacity')
# Ray drains the proxy of a node left without replicas and then removes it: not a proxy that should serve.
LEAVING_PROXY_STATES = frozenset(('DRAINING', 'DRAINED'))
_ANSI_RE = re.compile(r'\x1b\[[0-?]*[ -/]*[@-~]')
_MARKER_LINE_RE = re.compile(r'^\s*[\^~]+\s*$')


def dashboard_argument_spec():
    """Options every module talking to the dashboard accepts."""
    return dict(
        dashboard_url=dict(type='str', default=DEFAULT_DASHBOARD_URL),
        token=dict(type='str', no_log=True, fallback=(env_fallback, ['RAY_AUTH_TOKEN'])),
        token_file=dict(type='path'),
        validate_certs=dict(type='bool', default=True),
        request_timeout=dict(type='float', default=10),
    )


def validate_dashboard_params(module):
    """The checks of the shared options; fails the module with the fix."""
    p = module.params
    if not p['dashboard_url'].startswith(('http://', 'https://')):
        module.fail_json(msg='dashboard_url must start with http:// or https://, got %s' % p['dashboard_url'])
    if p['request_timeout'] <= 0:
        module.fail_json(msg='request_timeout must be greater than 0, got %s' % p['request_timeout'])


def module_token(module):
    """The token: read from token_file on the managed host when set (it wins over token and RAY_AUTH_TOKEN)."""
    path = module.params.get('token_file')
    if not path:
        return module.params.get('token')
    try:
        with open(path, encoding='utf-8') as handle:
            token = handle.read().strip()
    except OSError as e:
        module.fail_json(msg='cannot read the Ray token file %s on this host: %s. Point token_file at the token that '
                             'site.yml wrote (ray_auth_token_file), or run site.yml first.' % (path, e.strerror or e))
    if not token:
        module.fail_json(msg='the Ray token file %s is empty. Run site.yml again to write the token, or point '
                             'token_file at the cluster\'s token.' % path)
    return token


class RayDashboardError(Exception):
    """A dashboard call failed. ``status`` is the HTTP status, or None when the dashboard was not reached."""

    def __init__(self, msg, status=None, url=None, body=None):
        super().__init__(msg)
        self.msg = msg
        self.status = status
        self.url = url
        self.body = body

    @property
    def unreachable(self):
        return self.status is None

    @property
    def auth_failed(self):
        return self.status in (401, 403)


class RayDashboardClient:
    """Thin JSON client for the Ray dashboard; every error names the dashboard address, never the token."""

    def __init__(self, url, token=None, validate_certs=True, timeout=10):
        self.url = (url or DEFAULT_DASHBOARD_URL).rstrip('/')
        # A token read with slurp/lookup('file') usually ends with a newline.
        self._token = (token or '').strip() or None
        self.validate_certs = validate_certs
        self.timeout = timeout

    @classmethod
    def from_module(cls, module):
        p = module.params
        return cls(p['dashboard_url'], token=module_token(module), validate_certs=p['validate_certs'],
                   timeout=p['request_timeout'])

    # --- low level -----------------------------------------------------------------------------------------------

    def _headers(self, has_body):
        # Deliberately no Origin/Referer/Sec-Fetch-*: the dashboard rejects writes that look like a browser made them.
        headers = {'Accept': 'application/json', 'User-Agent': USER_AGENT}
        if has_body:
            headers['Content-Type'] = 'application/json'
        if self._token:
            headers['Authorization'] = 'Bearer %s' % self._token
        return headers

    def _scrub(self, text):
        text = to_text(text, errors='surrogate_or_replace')
        return text.replace(self._token, '********') if self._token else text

    def request(self, method, path, body=None, query=None, timeout=None):
        """Send one request; return the parsed JSON answer, the text when it is not JSON, or None when empty.
        ``timeout`` replaces the client's for this request."""
        method = method.upper()
        url = '%s/%s' % (self.url, path.lstrip('/'))
        if query:
            url += ('&' if '?' in url else '?') + urlencode(query, doseq=True)
        data = None if body is None else json.dumps(body).encode('utf-8')
        try:
            resp = open_url(url, data=data, method=method, headers=self._headers(data is not None),
                            http_agent=USER_AGENT, timeout=timeout or self.timeout, validate_certs=self.validate_certs,
                            use_netrc=False)  # a ~/.netrc entry would replace our Bearer header
            raw = resp.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(method, url, e) from None
        except urllib.error.URLError as e:
            raise self._unreachable(e.reason) from None
        except (UrlsConnectionError, http.client.HTTPException, OSError, ValueError) as e:
            # OSError covers refused connections and socket timeouts raised outside URLError.
            raise self._unreachable(e) from None
        return self._decode(raw)

    def get(self, path, query=None):
        return self.request('GET', path, query=query)

    def put(self, path, body=None, query=None, timeout=None):
        return self.request('PUT', path, body=body, query=query, timeout=timeout)

    def post(self, path, body=None, query=None):
        return self.request('POST', path, body=body, query=query)

    def delete(self, path, query=None):
        return self.request('DELETE', path, query=query)

    @staticmethod
    def _decode(raw):
        text = to_text(raw or b'', errors='surrogate_or_replace')
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def _unreachable(self, reason):
        reason = self._scrub(reason) or 'no reason given'
        return RayDashboardError('cannot reach the Ray dashboard at %s: %s' % (self.url, reason))

    def _http_error(self, method, url, err):
        status = err.code
        try:
            body = self._scrub(err.read() or b'')
        except Exception:  # some HTTPError objects carry no readable body
            body = ''
        excerpt = ' '.join(body.split())
        if len(excerpt) > _EXCERPT_LEN:
            excerpt = excerpt[:_EXCERPT_LEN] + '...'
        if status == 401 and not self._token:
            msg = ('the Ray dashboard at %s requires a token (HTTP 401 on %s %s): set the token_file or token option, '
                   'or the RAY_AUTH_TOKEN environment variable' % (self.url, method, url))
        elif status in (401, 403) and self._token:
            msg = ('the Ray dashboard at %s rejected the token (HTTP %s on %s %s): it is not the token of this cluster; '
                   'use the one the nodes run with (RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH on the head)' % (self.url, status, method, url))
        else:
            msg = '%s %s failed: HTTP %s %s' % (method, url, status, self._scrub(err.reason or ''))
            msg = msg.rstrip() + (': %s' % excerpt if excerpt else '')
        return RayDashboardError(msg, status=status, url=url, body=body)

    def _unexpected(self, what, answer):
        excerpt = ' '.join(self._scrub(json.dumps(answer) if not isinstance(answer, str) else answer).split())
        return RayDashboardError('unexpected answer from the Ray dashboard at %s to %s: %s' % (self.url, what, excerpt[:_EXCERPT_LEN]))

    # --- typed helpers --------------------------------------------------------------------------------------------

    def alive_nodes(self):
        """List the node dicts (node_id, node_ip, is_head_node, state, resources_total, ...) of ALIVE nodes."""
        query = [('filter_keys', 'state'), ('filter_predicates', '='), ('filter_values', 'ALIVE'), ('limit', 10000)]
        answer = self.get('/api/v0/nodes', query=query)
        # State API envelope: {"result": bool, "msg": str, "data": {"result": {"total": N, "result": [...]}}}
        if not isinstance(answer, dict):
            raise self._unexpected('GET /api/v0/nodes', answer)
        if answer.get('result') is False:
            raise RayDashboardError('the Ray dashboard at %s could not list nodes: %s' % (self.url, self._scrub(answer.get('msg') or '')))
        try:
            nodes = answer['data']['result']['result']
        except (KeyError, TypeError):
            raise self._unexpected('GET /api/v0/nodes', answer) from None
        if not isinstance(nodes, list):
            raise self._unexpected('GET /api/v0/nodes', answer)
        return nodes

    def gcs_healthy(self):
        """True when /api/gcs_healthz answers ``success``; False on an HTTP error (e.g. 503). Unreachable raises."""
        try:
            answer = self.get('/api/gcs_healthz')
        except RayDashboardError as e:
            if e.unreachable:
                raise
            return False
        return isinstance(answer, str) and answer.strip().lower() == 'success'

    @staticmethod
    def _job_path(submission_id, suffix=''):
        return '/api/jobs/%s%s' % (quote(str(submission_id), safe=''), suffix)

    def submit_job(self, entrypoint, metadata=None, runtime_env=None, entrypoint_num_cpus=None):
        """Submit a job through the Jobs API and return its submission_id."""
        body = {'entrypoint': entrypoint}
        if metadata:
            body['metadata'] = {str(k): str(v) for k, v in metadata.items()}
        if runtime_env:
            body['runtime_env'] = runtime_env
        if entrypoint_num_cpus is not None:
            body['entrypoint_num_cpus'] = entrypoint_num_cpus
        answer = self.post('/api/jobs/', body=body)
        sid = (answer.get('submission_id') or answer.get('job_id')) if isinstance(answer, dict) else None
        if not sid:
            raise self._unexpected('POST /api/jobs/', answer)
        return sid

    def list_jobs(self):
        """All jobs the cluster knows, as a list of job detail dicts (submission_id, status, metadata, ...)."""
        answer = self.get('/api/jobs/')
        if not isinstance(answer, list):
            raise self._unexpected('GET /api/jobs/', answer)
        return answer

    def job_info(self, submission_id):
        """Job details; ``status`` is one of PENDING/RUNNING/SUCCEEDED/FAILED/STOPPED, ``message`` explains it."""
        answer = self.get(self._job_path(submission_id))
        if not isinstance(answer, dict):
            raise self._unexpected('GET %s' % self._job_path(submission_id), answer)
        return answer

    def job_logs(self, submission_id):
        answer = self.get(self._job_path(submission_id, '/logs'))
        return (answer.get('logs') or '') if isinstance(answer, dict) else to_text(answer or '')

    def stop_job(self, submission_id):
        answer = self.post(self._job_path(submission_id, '/stop'))
        return bool(answer.get('stopped')) if isinstance(answer, dict) else False

    def delete_job(self, submission_id):
        answer = self.delete(self._job_path(submission_id))
        return bool(answer.get('deleted')) if isinstance(answer, dict) else False

    def serve_applications(self):
        """The Serve status: top-level settings, ``proxies`` and ``applications`` (name -> status, deployed_app_config,
        deployments). ``applications`` is always a dict, also before Serve ever started."""
        answer = self.get(SERVE_APPS_PATH)
        if not isinstance(answer, dict) or not isinstance(answer.get('applications') or {}, dict):
            raise self._unexpected('GET ' + SERVE_APPS_PATH, answer)
        answer['applications'] = answer.get('applications') or {}
        return answer

    def put_serve_applications(self, body):
        """Declare the whole Serve config. Applications left out of ``body['applications']`` are deleted.
        The dashboard answers only once Serve's controller has taken it, which on a head that just started
        (and a busy host) took longer than the usual request timeout: at least SERVE_PUT_TIMEOUT seconds."""
        return self.put(SERVE_APPS_PATH, body=body, timeout=max(self.timeout, SERVE_PUT_TIMEOUT))


# --- Serve helpers (pure) ---------------------------------------------------------------------------------------------

def strip_ansi(text):
    return _ANSI_RE.sub('', to_text(text or ''))


def clean_message(text, max_lines=15):
    """A Ray status message made readable: colours and the ^^^ marker lines of tracebacks removed, and a long traceback
    cut to its first line (what failed) and its last ``max_lines`` lines (where the exception is)."""
    lines = [line for line in strip_ansi(text).rstrip().splitlines() if not _MARKER_LINE_RE.match(line)]
    if len(lines) > max_lines + 1:
        lines = [lines[0], '[... %d lines cut ...]' % (len(lines) - 1 - max_lines)] + lines[-max_lines:]
    return '\n'.join(lines)


def proxy_problems(answer):
    """'proxy on <ip> is <status>' for every Serve proxy that should serve and is not HEALTHY."""
    return ['proxy on %s is %s' % (p.get('node_ip') or node_id, p.get('status'))
            for node_id, p in sorted((answer.get('proxies') or {}).items(), key=lambda kv: str(kv[1].get('node_ip')))
            if p.get('status') != 'HEALTHY' and p.get('status') not in LEAVING_PROXY_STATES]


def deployment_summary(dep):
    """A deployment of a Serve GET answer: status, cleaned message, target and RUNNING replicas with their ids."""
    ids = sorted(r.get('replica_id') for r in dep.get('replicas') or [] if r.get('state') == 'RUNNING')
    return dict(status=dep.get('status'), message=clean_message(dep.get('message')),
                target_num_replicas=dep.get('target_num_replicas'), running_replicas=len(ids), replica_ids=ids)


def serve_app_report(answer, name):
    """The application ``name`` as a Serve GET answer shows it (null status and no deployments when it is missing)."""
    app = answer['applications'].get(name) or {}
    cfg = app.get('deployed_app_config')
    deployments = {d: deployment_summary(dep) for d, dep in sorted((app.get('deployments') or {}).items())}
    ids = sorted(i for d in deployments.values() for i in d['replica_ids'])
    return dict(
        status=app.get('status'),
        message=clean_message(app.get('message')),
        route_prefix=app.get('route_prefix') or (cfg or {}).get('route_prefix'),
        deployments=deployments,
        replicas=len(ids),
        replica_ids=ids,
        deployed_config=cfg,
    )


def _normalize(value):
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    # Numbers compare by value (5 == 5.0: Ray keeps them as sent, YAML and templating may not), but Python would
    # also take True for 1, which user_config code may well tell apart.
    if isinstance(value, bool):
        return ('bool', value)
    return value


def normalize_serve_app(config):
    """Comparable form of one Serve application config: numbers by value, ``deployments`` keyed by name."""
    norm = _normalize(dict(config or {}))
    deployments = norm.get('deployments')
    if isinstance(deployments, list) and all(isinstance(d, dict) and 'name' in d for d in deployments):
        norm['deployments'] = {d['name']: d for d in deployments}
    return norm


def same_serve_app(a, b):
    return normalize_serve_app(a) == normalize_serve_app(b)


def serve_put_body(serve_status, applications):
    """PUT body that keeps the top-level settings of ``serve_status`` (a GET answer) and declares ``applications``."""
    body = {k: serve_status[k] for k in SERVE_TOP_LEVEL_KEYS if serve_status.get(k) is not None}
    body['applications'] = list(applications)
    return body
