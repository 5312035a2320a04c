#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import annotations

DOCUMENTATION = r'''
---
module: ray_serve_app
short_description: Declare one Ray Serve application through the Ray dashboard REST API
version_added: 0.1.0
description:
  - Reads the Serve applications from C(GET /api/serve/applications/) on the Ray dashboard, compares the deployed config
    of the application O(name) with the desired one, and sends C(PUT /api/serve/applications/) only when they differ.
  - The comparison is made on the C(deployed_app_config) Ray reports, not on the application status, so an identical
    config is never sent again (Ray would flicker the application to DEPLOYING).
  - Numbers compare by value (V(5) equals V(5.0)) and the order of the C(deployments) list does not matter.
  - With O(wait=true), waits until Ray shows the desired config, the application is RUNNING, every deployment is
    HEALTHY (or UPSCALING/DOWNSCALING, which still serve) and every Serve proxy is HEALTHY. It fails at once when the application or one of its deployments is
    DEPLOY_FAILED or UNHEALTHY, with Ray's message (colours removed, long tracebacks cut) in RV(msg).
author: ray-compose contributors
extends_documentation_fragment: [ray_dashboard]
options:
  name:
    description: Name of the Serve application.
    type: str
    required: true
  state:
    description:
      - V(present) deploys the application with the desired config, or updates it when its config differs.
      - V(absent) removes the application and leaves every other application in place.
    type: str
    choices: [present, absent]
    default: present
  config:
    description:
      - "One application config: one entry of the C(applications) list of a Serve config (C(import_path),
        C(route_prefix), C(runtime_env), C(args), C(deployments), ...)."
      - Its C(name) may be left out; when given it must equal O(name).
      - Not validated here (Ray silently accepts unknown fields); validate it before, e.g. in the role.
      - Mutually exclusive with O(config_file); one of them is required with O(state=present).
    type: dict
  config_file:
    description:
      - Path on the managed host of a YAML or JSON file holding either a full Serve config, whose C(applications) entry
        named O(name) is used, or a single application config.
      - Only that application entry is used. The top-level settings of a full Serve config (C(proxy_location),
        C(http_options), ...) are ignored; those the cluster runs with are kept.
      - Reading YAML needs PyYAML on the managed host; JSON does not.
    type: path
  http_port:
    description:
      - The port Serve's HTTP proxies listen on, in every node (Serve's C(http_options.port)). Serve takes it only when
        it starts, with the first application on a cluster; the module sends it then.
      - While Serve runs with another port the module fails and changes nothing, as Ray would keep the old port.
      - Unset, Serve's own default (8000) applies and the running port is never checked.
    type: int
  wait:
    description:
      - Wait until the application runs the desired config, healthy (O(state=present)), or is gone (O(state=absent)).
      - Also applies when nothing changed, so a run after a failed or unfinished deployment still fails or waits.
      - Skipped in check mode when a change would have been made.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait with O(wait=true). V(0) checks once.
    type: int
    default: 600
  interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 2
attributes:
  check_mode:
    description: Reports the change and the diff without sending the PUT.
    support: full
  diff_mode:
    description: Returns the application config before and after.
    support: full
notes:
  - The Serve REST API has no per-application write. The PUT replaces the whole Serve config, and Ray deletes every
    application left out of it. This module therefore sends the C(deployed_app_config) of every other application
    and the top-level settings (C(proxy_location), C(http_options), C(grpc_options), C(target_capacity)) exactly as
    the GET returned them, with only this application added, replaced or removed.
  - "Concurrency: the read and the PUT are not atomic (Ray offers no version check). Two writers at the same time,
    e.g. this module for two applications on the same cluster in parallel, can undo each other's change. Run the tasks
    for one cluster one at a time (one host per cluster, or C(throttle: 1)), and let no other tool (C(serve deploy),
    KubeRay) own the Serve config of the same cluster."
  - An application deployed with C(serve.run()) has no C(deployed_app_config); the module then refuses to send a PUT,
    as that would delete it.
  - A head restart without GCS fault tolerance loses every Serve application; run the task again afterwards.
  - Changing C(proxy_location) or C(http_options) through a PUT is ignored by Ray while Serve runs; only O(http_port)
    is sent, and only when Serve starts.
  - The token is never written to the results or to error messages.
requirements: []
'''

EXAMPLES = r'''
- name: Deploy the echo application and wait until it serves
  ray_serve_app:
    dashboard_url: http://10.0.0.10:8265
    token_file: /opt/ray-cluster/secrets/ray_auth_token
    name: echo
    config:
      route_prefix: /
      import_path: openai_echo:app_builder
      runtime_env:
        working_dir: file:///tmp/openai_echo.zip
      args:
        model_id: echo-cpu
      deployments:
        - name: OpenAIEcho
          autoscaling_config: {min_replicas: 1, max_replicas: 2, target_ongoing_requests: 5}
    wait_timeout: 300
  register: echo_app

- name: Show where it runs
  ansible.builtin.debug:
    msg: "{{ echo_app.status }} on {{ echo_app.route_prefix }} with {{ echo_app.replicas }} replicas"

- name: Deploy one application of a full Serve config file (other entries are ignored)
  ray_serve_app:
    name: llm
    config_file: /etc/ray/serve_config.yaml
  environment:
    RAY_AUTH_TOKEN: "{{ ray_token }}"

- name: Remove an application, keep the others
  ray_serve_app:
    dashboard_url: http://10.0.0.10:8265
    token: "{{ ray_token }}"
    name: old-model
    state: absent
'''

RETURN = r'''
status:
  description:
    - Application status as Ray reports it (NOT_STARTED, DEPLOYING, DEPLOY_FAILED, RUNNING, UNHEALTHY, DELETING).
    - Null when the application is not deployed.
  returned: when the dashboard answered
  type: str
  sample: RUNNING
message:
  description: The application message, colours removed and a long traceback cut to its last lines.
  returned: when the dashboard answered
  type: str
  sample: ""
route_prefix:
  description: Route prefix the application serves under.
  returned: when the dashboard answered
  type: str
  sample: /
deployments:
  description: The deployments of the application, by name.
  returned: when the dashboard answered
  type: dict
  contains:
    status: {description: "Deployment status (UPDATING, HEALTHY, UNHEALTHY, DEPLOY_FAILED, UPSCALING, DOWNSCALING).", type: str}
    message: {description: Deployment message, cleaned like RV(message)., type: str}
    target_num_replicas: {description: Number of replicas Serve aims for., type: int}
    running_replicas: {description: Number of replicas in state RUNNING., type: int}
    replica_ids: {description: Sorted ids of the RUNNING replicas., type: list, elements: str}
  sample:
    OpenAIEcho: {status: HEALTHY, message: "", target_num_replicas: 1, running_replicas: 1, replica_ids: [rmuxoeo8]}
replicas:
  description: Number of RUNNING replicas over all deployments of the application.
  returned: when the dashboard answered
  type: int
  sample: 1
replica_ids:
  description: Sorted ids of all RUNNING replicas of the application.
  returned: when the dashboard answered
  type: list
  elements: str
  sample: [rmuxoeo8]
proxies_healthy:
  description:
    - Whether every Serve proxy is HEALTHY. Proxies that Ray is DRAINING (on nodes left without replicas) are not
      counted; they are on their way out.
  returned: when the dashboard answered
  type: bool
  sample: true
config:
  description: The desired application config, with its name set. Null with O(state=absent).
  returned: always
  type: dict
  sample: {name: echo, route_prefix: /, import_path: openai_echo:app_builder}
deployed_config:
  description:
    - The C(deployed_app_config) Ray has for the application after the call; in check mode, the one before.
    - Null when the application is not deployed.
  returned: when the dashboard answered
  type: dict
  sample: {name: echo, route_prefix: /, import_path: openai_echo:app_builder}
applications:
  description:
    - Names of all Serve applications after the call, in Ray's order, leaving out those Ray is deleting.
    - In check mode, those deployed now.
  returned: when the dashboard answered
  type: list
  elements: str
  sample: [echo]
elapsed:
  description: Seconds spent, waiting included.
  returned: always
  type: float
  sample: 12.4
terminal:
  description:
    - True when the module failed because Ray reports the application or a deployment as DEPLOY_FAILED or UNHEALTHY,
      which waiting longer will not fix. False on success, on a timeout and on other errors.
  returned: always
  type: bool
  sample: false
diff:
  description: The application config before and after (an empty dict for a missing application).
  returned: in diff mode
  type: dict
msg:
  description: What happened, or why the module failed (Ray's messages and validation errors included).
  returned: always
  type: str
  sample: "Serve application 'echo' is RUNNING with 1 replica"
changed:
  description: Whether a PUT was sent (or, in check mode, would have been).
  returned: always
  type: bool
'''

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.common.yaml import HAS_YAML, yaml_load
from ansible.module_utils.ray_dashboard import (
    RayDashboardClient,
    RayDashboardError,
    clean_message,
    dashboard_argument_spec,
    deployment_summary,
    proxy_problems,
    same_serve_app,
    serve_app_report,
    serve_put_body,
    strip_ansi,
    validate_dashboard_params,
)

READY = 'ready'
FAILED = 'failed'  # waiting longer will not help
WAITING = 'waiting'
FAILED_STATES = frozenset(('DEPLOY_FAILED', 'UNHEALTHY'))
# An autoscaling deployment keeps serving while it scales; waiting for the load to end would hang a deploy.
SERVING_STATES = frozenset(('HEALTHY', 'UPSCALING', 'DOWNSCALING'))


class ServeAppError(Exception):
    pass


# --- desired config ---------------------------------------------------------------------------------------------------

def read_config_file(path):
    try:
        with open(path, 'rb') as f:
            text = to_text(f.read(), errors='surrogate_or_strict')
    except (OSError, UnicodeError) as e:
        raise ServeAppError('cannot read config_file %s: %s' % (path, e)) from None
    if not HAS_YAML:
        try:
            return json.loads(text)
        except ValueError as e:
            raise ServeAppError('config_file %s is not JSON (%s), and reading YAML needs PyYAML on the managed host'
                                % (path, e)) from None
    try:
        return yaml_load(text)  # JSON is YAML too
    except Exception as e:  # yaml.YAMLError; yaml itself is imported by common.yaml only when present
        raise ServeAppError('config_file %s is not valid YAML or JSON: %s' % (path, e)) from None


def pick_app(data, name, source):
    """The application config named ``name`` from a full Serve config, or ``data`` itself when it is a single one."""
    if not isinstance(data, dict):
        raise ServeAppError('%s must hold a mapping (a Serve config or one application config), got %s'
                            % (source, type(data).__name__))
    if 'applications' not in data:
        return data
    apps = data['applications'] or []
    if not isinstance(apps, list) or not all(isinstance(a, dict) for a in apps):
        raise ServeAppError('%s: applications must be a list of application configs' % source)
    for app in apps:
        if app.get('name') == name:
            return app
    raise ServeAppError('%s has no application named %s; it has: %s'
                        % (source, name, ', '.join(str(a.get('name')) for a in apps) or 'none'))


def desired_config(params):
    name = params['name']
    if params['config_file']:
        source = 'config_file %s' % params['config_file']
        app = pick_app(read_config_file(params['config_file']), name, source)
    else:
        source, app = 'config', params['config']
    if 'name' in app and app['name'] != name:
        raise ServeAppError('%s names the application %s, but name is %s' % (source, app['name'], name))
    return dict(app, name=name)


# --- reading Ray's answer ---------------------------------------------------------------------------------------------

def build_body(answer, name, desired, http_port=None):
    """The full Serve config to PUT: every other application as Ray has it, in Ray's order, and this one replaced in
    place, appended, or (desired None) left out; with ``http_port`` when Serve starts with it."""
    apps = []
    for other, app in answer['applications'].items():
        if other == name:
            if desired is not None:
                apps.append(desired)
        elif app.get('deployed_app_config'):
            apps.append(app['deployed_app_config'])
        elif app.get('status') != 'DELETING':  # a DELETING one is going anyway
            raise ServeAppError('Serve application %s has no deployed_app_config (deployed with serve.run()?); a PUT '
                                'would delete it, so nothing was changed' % other)
    if desired is not None and name not in answer['applications']:
        apps.append(desired)
    body = serve_put_body(answer, apps)
    if http_port is not None and not answer.get('controller_info'):
        # Serve is not running: it starts with this PUT, on this port.
        body['http_options'] = dict(body.get('http_options') or {}, port=http_port)
    return body


def serve_port_problem(answer, http_port):
    """Why Serve cannot take ``http_port`` now, or None: it runs (it has a controller) on another port."""
    running = (answer.get('http_options') or {}).get('port') if answer.get('controller_info') else None
    if http_port is None or running is None or running == http_port:
        return None
    return ("Serve's proxies listen on port %s, not on http_port %s: Serve takes its HTTP port only when it starts, so "
            "nothing was changed. Keep the port it runs with, or start Serve afresh: remove the cluster's state "
            "(playbooks/teardown.yml -e ray_teardown_fresh=true, then site.yml) and deploy the applications again "
            "(serve.yml), which starts Serve on the new port" % (running, http_port))


def report(answer, name):
    """The return values that describe the application as ``answer`` (a GET) shows it."""
    return dict(serve_app_report(answer, name), proxies_healthy=not proxy_problems(answer),
                applications=[n for n, a in answer['applications'].items() if a.get('status') != 'DELETING'])


def readiness_present(answer, name, desired):
    """(verdict, detail lines): READY, FAILED (waiting will not help) or WAITING."""
    app = answer['applications'].get(name)
    if not app or app.get('status') == 'DELETING':
        return WAITING, ['not deployed' if not app else 'being deleted']
    # Until Ray shows our config, its status may still be the one of the previous config: never trust it.
    if not same_serve_app(app.get('deployed_app_config'), desired):
        return WAITING, ['Ray does not show the desired config yet (status %s)' % app.get('status')]
    status = app.get('status')
    failed = status in FAILED_STATES
    problems = []
    for dname, dep in sorted((app.get('deployments') or {}).items()):
        if dep.get('status') in SERVING_STATES:
            continue
        s = deployment_summary(dep)
        failed = failed or s['status'] in FAILED_STATES
        problems.append('deployment %s is %s (%d of %s replicas running)%s' % (
            dname, s['status'], s['running_replicas'], s['target_num_replicas'], ': ' + s['message'] if s['message'] else ''))
    problems += proxy_problems(answer)
    if status == 'RUNNING' and not problems:
        return READY, []
    message = clean_message(app.get('message'))
    return FAILED if failed else WAITING, ([message] if message else []) + problems


def readiness_absent(answer, name):
    app = answer['applications'].get(name)
    return (READY, []) if app is None else (WAITING, ['still listed with status %s' % app.get('status')])


def wait_for(client, params, check, answer=None):
    """Re-read every interval until check(answer) is not WAITING or wait_timeout passes. ``answer`` is a fresh GET
    answer to start with, if there is one. Return (the last answer read or None, verdict, detail lines)."""
    deadline = time.monotonic() + params['wait_timeout']
    last = answer
    while True:
        if answer is None:
            try:
                answer = last = client.serve_applications()
            except RayDashboardError as e:
                # A restarting dashboard or Serve controller is worth waiting for; a wrong token or a 4xx is not.
                if not (e.unreachable or e.status >= 500):
                    raise
                error = e.msg
        verdict, details = check(answer) if answer is not None else (WAITING, [error])
        remaining = deadline - time.monotonic()
        if verdict != WAITING or remaining <= 0:
            return last, verdict, details
        time.sleep(min(params['interval'], remaining))
        answer = None


# --- main -------------------------------------------------------------------------------------------------------------

def validate(module):
    validate_dashboard_params(module)
    p = module.params
    if not p['name'].strip():
        module.fail_json(msg='name must not be empty')
    if p['wait_timeout'] < 0:
        module.fail_json(msg='wait_timeout must not be negative, got %s' % p['wait_timeout'])
    if p['state'] == 'present' and p['config'] is None and not p['config_file']:  # an explicit null passes required_if
        module.fail_json(msg='state=present needs config or config_file')
    if p['interval'] <= 0:
        module.fail_json(msg='interval must be greater than 0, got %s' % p['interval'])
    if p['http_port'] is not None and not 1 <= p['http_port'] <= 65535:
        module.fail_json(msg='http_port must be a TCP port (1-65535), got %s' % p['http_port'])


def put(client, body):
    try:
        client.put_serve_applications(body)
    except RayDashboardError as e:
        if e.status != 400:
            raise
        # Ray's pydantic text names entries by index (applications.0...): say which application each index is.
        names = ', '.join('applications.%d is %s' % (i, a.get('name')) for i, a in enumerate(body['applications']))
        raise ServeAppError('Ray rejected the Serve config (HTTP 400 on PUT %s; %s):\n%s'
                            % (e.url, names or 'no applications', strip_ansi(e.body).strip())) from None


def main():
    argument_spec = dashboard_argument_spec()
    argument_spec.update(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        config=dict(type='dict'),
        config_file=dict(type='path'),
        http_port=dict(type='int'),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=600),
        interval=dict(type='float', default=2),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[('config', 'config_file')],
                           required_if=[('state', 'present', ('config', 'config_file'), True)], supports_check_mode=True)
    validate(module)
    p = module.params
    name, present = p['name'], p['state'] == 'present'
    client = RayDashboardClient.from_module(module)
    start = time.monotonic()
    result = dict(changed=False, config=None, terminal=False)
    answer = None

    def fail(msg, **extra):
        result.update(report(answer, name) if answer is not None else {})
        module.fail_json(msg=msg, elapsed=round(time.monotonic() - start, 2), **dict(result, **extra))

    try:
        desired = result['config'] = desired_config(p) if present else None
        answer = client.serve_applications()
        problem = serve_port_problem(answer, p['http_port']) if present else None
        if problem:
            raise ServeAppError(problem)
        app = answer['applications'].get(name)
        before = app.get('deployed_app_config') if app else None
        if present:
            changed = not same_serve_app(before, desired)
        else:
            changed = app is not None and app.get('status') != 'DELETING'
        result['changed'] = changed
        if module._diff:
            after = (desired if changed else before) if present else None
            result['diff'] = dict(before=before or {}, after=after or {},
                                  before_header='Serve application %s (deployed)' % name,
                                  after_header='Serve application %s (%s)' % (name, 'desired' if present else 'removed'))
        if changed:
            body = build_body(answer, name, desired, p['http_port'])  # also in check mode: it refuses what a PUT would break
            if not module.check_mode:
                put(client, body)
                answer = None  # what Ray had before the PUT says nothing about after
        verdict, details = READY, []
        if p['wait'] and not (changed and module.check_mode):
            check = (lambda a: readiness_present(a, name, desired)) if present else (lambda a: readiness_absent(a, name))
            answer, verdict, details = wait_for(client, p, check, answer)
        elif answer is None:
            answer = client.serve_applications()
    except ServeAppError as e:
        fail(str(e))
    except RayDashboardError as e:
        fail(e.msg)

    if answer is None:  # no successful read since the PUT
        fail('Serve application %s: no answer from the Ray dashboard at %s within %ss (wait_timeout): %s'
             % (name, client.url, p['wait_timeout'], '; '.join(details)))
    status = (answer['applications'].get(name) or {}).get('status')
    if verdict == FAILED:
        fail('Serve application %s is %s:\n%s' % (name, status, '\n'.join(details)), terminal=True)
    if verdict == WAITING:
        fail('Serve application %s %s after %ss (wait_timeout) at %s: %s' % (
            name, 'not ready' if present else 'still present', p['wait_timeout'], client.url,
            '\n'.join(['status %s' % status] + details)))
    result.update(report(answer, name))
    if not present:
        msg = 'Serve application %s %s' % (name, 'removed' if changed else 'not deployed')
    else:
        n = result['replicas']
        msg = 'Serve application %s is %s with %d replica%s' % (name, result['status'], n, '' if n == 1 else 's')
    module.exit_json(msg=msg, elapsed=round(time.monotonic() - start, 2), **result)


if __name__ == '__main__':
    main()
