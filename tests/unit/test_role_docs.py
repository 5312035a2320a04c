"""Every role's defaults, argument specs and README variable table name the same variables, with the same defaults."""
from __future__ import annotations

import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLES = sorted(os.listdir(os.path.join(ROOT, 'roles')))
# Spec defaults written for a reader instead of the value itself (a long list, a template).
PROSE_DEFAULTS = {
    ('ray', 'ray_serve_port'),  # 8001 with the gateway on, else 8000: said in its description
    ('ray_loadtest', 'ray_loadtest_model_id'),
    ('ray_loadtest', 'ray_loadtest_prompts'),
    ('ray_serve', 'ray_serve_pack_dir'),
}


def load(role, *path):
    full = os.path.join(ROOT, 'roles', role, *path)
    if not os.path.exists(full):
        return None
    with open(full, encoding='utf-8') as handle:
        return handle.read()


def defaults(role):
    return yaml.safe_load(load(role, 'defaults', 'main.yml') or '') or {}


# Entry points whose options are their includer's parameters, not settings:
# they have no defaults/main.yml value and no README table row.
CALL_ENTRY_POINTS = {
    ('ray', 'secret'),  # the token, the Redis password, the gateway key and Grafana's password pass file and host
}


def spec_options(role):
    """(entry point, name, option) for every option of every entry point that takes settings."""
    specs = yaml.safe_load(load(role, 'meta', 'argument_specs.yml'))['argument_specs']
    return [(entry, name, option) for entry, spec in specs.items() if (role, entry) not in CALL_ENTRY_POINTS
            for name, option in (spec.get('options') or {}).items()]


def readme_names(role):
    """Variable names in the first cell of the README's table rows: `a`, `a` / `b`, or `a_x` / `_y` for a_y."""
    names = set()
    for cell in re.findall(r'^\| (`[^|]+) \|', load(role, 'README.md') or '', re.M):
        previous = None
        for name in re.findall(r'`([a-z_0-9]+)`', cell):
            if name.startswith('_') and previous:
                name = previous.rsplit('_', 1)[0] + name
            names.add(name)
            previous = name
    return names


@pytest.mark.parametrize('role', ROLES)
def test_argument_specs_declare_every_default_and_nothing_else(role):
    declared = {name for _, name, _ in spec_options(role)}
    assert set(defaults(role)) - declared == set(), 'defaults/main.yml has variables meta/argument_specs.yml lacks'
    assert declared - set(defaults(role)) == set(), 'meta/argument_specs.yml has options without a default'


@pytest.mark.parametrize('role', ROLES)
def test_argument_specs_show_the_real_defaults(role):
    values = defaults(role)
    wrong = ['%s (%s): spec %r, defaults %r' % (name, entry, option.get('default', '<none>'), values[name])
             for entry, name, option in spec_options(role)
             if name in values and (role, name) not in PROSE_DEFAULTS and option.get('default') != values[name]]
    assert wrong == []


@pytest.mark.parametrize('role', ROLES)
def test_readme_table_lists_every_default(role):
    names = readme_names(role)
    assert set(defaults(role)) - names == set(), 'README.md has no table row for these'
    assert names - set(defaults(role)) == set(), 'README.md documents variables the role does not have'
