"""Generated from apex_mcp/apex/apex.proto by scripts/gen_proto.py: do not edit."""
