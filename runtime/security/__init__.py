"""Security at rest and on the wire (the seed's requirements).

* :mod:`runtime.security.keys`: 256-bit data keys from a file or an environment variable (never logged);
* :mod:`runtime.security.aead`: AES-256-GCM file encryption in authenticated chunks (logs, trials, models);
* :mod:`runtime.security.manifest`: SHA-256 manifests; :func:`verify_model_file` before any model is loaded;
* :mod:`runtime.security.tls`: TLS 1.3-only contexts, a self-signed certificate for tests and the rig, and
  a small telemetry stream over TLS.

Only the standard library and ``cryptography`` are imported.
"""
from runtime.security.aead import (DecryptionError, NotEncryptedError, TamperedError, WrongKeyError, decrypt_bytes,
                                   decrypt_file, encrypt_bytes, encrypt_file, is_encrypted)
from runtime.security.keys import DataKey, KeyError_, KeyMissingError, generate_key_file, load_key, key_from_env_or_none
from runtime.security.manifest import ModelIntegrityError, read_verified_model, verify_model_file, write_manifest

__all__ = ["DataKey", "DecryptionError", "KeyError_", "KeyMissingError", "ModelIntegrityError", "NotEncryptedError",
           "TamperedError", "WrongKeyError", "decrypt_bytes", "decrypt_file", "encrypt_bytes", "encrypt_file",
           "generate_key_file", "is_encrypted", "key_from_env_or_none", "load_key", "read_verified_model",
           "verify_model_file", "write_manifest"]
