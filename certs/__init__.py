"""Control path: lab certificate material (generator in ``certs.generate``)."""
