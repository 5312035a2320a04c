#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import annotations

DOCUMENTATION = r'''
---
module: ray_serve_info
short_description: Read the state of Ray Serve applications, their deployments and replicas
description:
  - Reads C(GET /api/serve/applications/) from the Ray dashboard and returns every Serve application (or the one
    named by O(name)) with its status, route, deployments, autoscaling settings and replicas.
  - Read-only; never reports a change and works in check mode.
  - Use it with C(until) to wait for a state, for example a deployment back at its minimum replicas.
author: ray-compose contributors
extends_documentation_fragment: [ray_dashboard]
options:
  name:
    description:
      - Name of one application. The result then also has RV(exists) and RV(application).
      - Without it, only RV(applications) lists them all.
    type: str
notes:
  - The token is never written to the results or to error messages.
requirements: []
'''

EXAMPLES = r'''
- name: Read the Serve applications
  ray_serve_info:
    token_file: /opt/ray-cluster/secrets/ray_auth_token
  register: serve

- name: Show each application's status
  ansible.builtin.debug:
    msg: "{{ serve.applications | dict2items | map(attribute='key') | zip(serve.applications.values() | map(attribute='status')) }}"

- name: Wait until the LLM deployment is back at one replica
  ray_serve_info:
    token_file: /opt/ray-cluster/secrets/ray_auth_token
    name: Qwen3-0.6B
  register: qwen
  until: >-
    qwen.exists and qwen.application.deployments['LLMServer:Qwen3-0_6B'].running_replicas == 1
    and qwen.application.deployments['LLMServer:Qwen3-0_6B'].replica_states.values() | sum == 1
  retries: 60
  delay: 5
'''

RETURN = r'''
applications:
  description: Every Serve application by name, in the shape of RV(application).
  returned: success
  type: dict
  sample:
    echo-cpu:
      status: RUNNING
      message: ""
      route_prefix: /
      replicas: 1
      replica_ids: [rmuxoeo8]
      deployments:
        OpenAIEcho:
          status: HEALTHY
          message: ""
          target_num_replicas: 1
          running_replicas: 1
          replica_ids: [rmuxoeo8]
          replica_states: {RUNNING: 1}
          autoscaling_config: {min_replicas: 1, max_replicas: 2, target_ongoing_requests: 5.0}
      deployed_config: {name: echo-cpu, route_prefix: /, import_path: openai_echo:app_builder}
exists:
  description: Whether the application O(name) is deployed (and not being deleted).
  returned: when O(name) is given
  type: bool
  sample: true
application:
  description: The application O(name); null when it is not deployed.
  returned: when O(name) is given
  type: dict
  contains:
    status: {description: "Application status as Ray reports it (DEPLOYING, RUNNING, DEPLOY_FAILED, UNHEALTHY, DELETING).", type: str}
    message: {description: "The application message, colours removed and a long traceback cut to its last lines.", type: str}
    route_prefix: {description: Route prefix the application serves under., type: str}
    replicas: {description: Number of RUNNING replicas over all deployments., type: int}
    replica_ids: {description: Sorted ids of all RUNNING replicas., type: list, elements: str}
    deployed_config: {description: "The C(deployed_app_config) Ray has; null for an application deployed with C(serve.run()).", type: dict}
    deployments:
      description: The deployments by name.
      type: dict
      contains:
        status: {description: "Deployment status (UPDATING, HEALTHY, UNHEALTHY, DEPLOY_FAILED, UPSCALING, DOWNSCALING).", type: str}
        message: {description: Deployment message, cleaned like RV(application.message)., type: str}
        target_num_replicas: {description: Number of replicas Serve aims for., type: int}
        running_replicas: {description: Number of replicas in state RUNNING., type: int}
        replica_ids: {description: Sorted ids of the RUNNING replicas., type: list, elements: str}
        replica_states: {description: "Number of replicas in each state (STARTING, RUNNING, STOPPING, ...).", type: dict}
        autoscaling_config: {description: "The deployment's autoscaling settings; null for a fixed number of replicas.", type: dict}
proxies_healthy:
  description: Whether every Serve proxy is HEALTHY, leaving out those Ray is DRAINING.
  returned: success
  type: bool
  sample: true
msg:
  description: A one-line summary, or why the module failed.
  returned: always
  type: str
  sample: "2 Serve applications: echo-cpu RUNNING, echo-cpu-slow RUNNING"
changed:
  description: Always false.
  returned: always
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ray_dashboard import (
    RayDashboardClient,
    RayDashboardError,
    dashboard_argument_spec,
    proxy_problems,
    serve_app_report,
    validate_dashboard_params,
)


def application(answer, name):
    """serve_app_report with each deployment's replica states and autoscaling settings."""
    app = answer['applications'][name]
    result = serve_app_report(answer, name)
    for dname, summary in result['deployments'].items():
        dep = app['deployments'][dname]
        states = {}
        for replica in dep.get('replicas') or []:
            states[replica.get('state')] = states.get(replica.get('state'), 0) + 1
        summary['replica_states'] = states
        summary['autoscaling_config'] = (dep.get('deployment_config') or {}).get('autoscaling_config') or None
    return result


def main():
    argument_spec = dashboard_argument_spec()
    argument_spec.update(name=dict(type='str'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    validate_dashboard_params(module)
    name = module.params['name']
    client = RayDashboardClient.from_module(module)
    try:
        answer = client.serve_applications()
    except RayDashboardError as e:
        module.fail_json(msg=e.msg, changed=False)
    apps = {n: application(answer, n) for n in answer['applications']}
    result = dict(changed=False, applications=apps, proxies_healthy=not proxy_problems(answer))
    summary = ', '.join('%s %s' % (n, a['status']) for n, a in apps.items()) or 'none'
    result['msg'] = '%d Serve application%s: %s' % (len(apps), '' if len(apps) == 1 else 's', summary)
    if name is not None:
        app = apps.get(name)
        result['exists'] = app is not None and app['status'] != 'DELETING'
        result['application'] = app
    module.exit_json(**result)


if __name__ == '__main__':
    main()
