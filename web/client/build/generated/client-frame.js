// Generated from schemas/generated/ws by scripts/generate-types.mjs; do not edit.
export {};
