"""The project's error types.

Every failure a user can cause or fix is one of these. The task layer turns a
`MlopsBoxError` into its message on one line and exit status 1; anything else is a bug
and keeps its traceback.
"""


class MlopsBoxError(Exception):
    """Root of the errors whose message tells the user what to do."""


class ConfigError(MlopsBoxError):
    """A setting in fabric.yaml, FABRIC_* variables or the Pulumi stack files is wrong."""


class BoxNotFound(MlopsBoxError):
    """No box matches the settings (no tagged instance, or no local box created)."""


class AmbiguousBox(MlopsBoxError):
    """More than one box matches the settings."""


class ProviderError(MlopsBoxError):
    """The provider (AWS, or the local box machinery) refused or failed an operation."""


class UnsupportedPlatform(MlopsBoxError):
    """This machine cannot run the requested provider (for example the local box off Linux)."""


class PublicAddressError(MlopsBoxError):
    """This machine's public address is unknown or not usable."""


class WaitTimeout(MlopsBoxError):
    """Something did not reach the awaited state within its timeout."""


class SshConfigError(MlopsBoxError):
    """The ssh entry, its Include line or the project's known-hosts file cannot be written."""


class HostKeyMismatch(MlopsBoxError):
    """The box offered a host key other than the one pinned for it, or than its provider
    vouches for."""


class HostKeyUnverified(MlopsBoxError):
    """No key is pinned for the box and its provider vouches for none (and the user did
    not opt in to trusting the first key)."""


class DatabaseError(MlopsBoxError):
    """The MLflow backend database cannot be found, read, reached or used."""


class DatabaseNotConfigured(DatabaseError):
    """The box has no database to use (it was created with the sqlite backend)."""


class DatabaseNotFound(DatabaseError):
    """The RDS instance the box is tagged with, or the database in it, does not exist."""


class DatabaseNotReady(DatabaseError):
    """The RDS instance exists but is not `available` yet (creating, modifying, stopped...)."""


class DatabaseSecretError(DatabaseError):
    """The database's master-user secret is missing, unreadable or malformed."""


class DatabaseUnreachable(DatabaseError):
    """The box cannot open a TCP connection to PostgreSQL (security group, routing, state)."""


class DatabaseAuthError(DatabaseError):
    """PostgreSQL refused the user or its password."""


class SchemaUpgradeError(DatabaseError):
    """MLflow's schema upgrade of the backend database failed."""


class TunnelError(MlopsBoxError):
    """The SSH tunnel to MLflow could not be opened or MLflow does not answer through it."""


class DeployError(MlopsBoxError):
    """A deploy, rollback or stop of the model router and its slots failed or was refused."""


class DeployBusy(DeployError):
    """Another deploy is running on the box."""


class MonitorError(MlopsBoxError):
    """A drift report or the monitoring schedule was refused or failed."""


class UnknownModel(MonitorError):
    """MLflow on the box has no such model version (or nothing is live to default to)."""


class NoReferenceSample(MonitorError):
    """The model's training run logged no reference sample to compare with."""


class EmptyWindow(MonitorError):
    """The prediction log has no predictions of the model in the window."""


class LabelsError(MonitorError):
    """A labels file cannot be read or has the wrong columns or values."""
