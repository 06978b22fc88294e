"""The local stack under `.kcity/`: a private TimescaleDB and Mosquitto, supervised processes.

local.py (`kcity up|down|status`), postgres.py, mosquitto.py, processes.py (spawn, ports,
users), broker_admin.py (Mosquitto's dynamic-security commands). Of the shell it imports only
settings, errors, the database connection and the schema; never the API, commands or reports.
"""
