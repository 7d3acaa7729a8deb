"""Trust material: the signed directory of agencies and their keys, the sealed keystore,
provisioning a deployment, and the governance acts of rotation, revocation and signing."""
