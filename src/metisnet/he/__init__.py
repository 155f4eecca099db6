"""Homomorphic encryption schemes (Paillier, CKKS adapter) behind one Scheme interface."""
