"""The experiments' config files; ``for_mapping`` picks the one ``--mapping=<name>`` runs."""

import importlib

# Mappings with a config file of their own; the others run default.py with that map φ.
CONFIG_FILES = ("vae", "generated", "generated_full", "style")


def for_mapping(name: str):
  """The config ``python -m experiments.distill --mapping=<name>`` runs: ``configs/<name>.py``
  for the mappings in ``CONFIG_FILES``, else ``default.py`` with ``mapping = name``."""
  module = name if name in CONFIG_FILES else "default"
  config = importlib.import_module(f"experiments.configs.{module}").get_config()
  config.mapping = name
  return config
