// Extensions for USE_SUBGROUP variants (include first).
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Subgroups in a workgroup of `wg` invocations. Mesa 22 lavapipe reports floor(wg / size) in
// gl_NumSubgroups when wg is not a multiple of the subgroup size; the true count is never below the
// ceiling, so the larger of the two is right everywhere.
#define NUM_SUBGROUPS(wg) max(gl_NumSubgroups, ((wg) + gl_SubgroupSize - 1u) / gl_SubgroupSize)
#endif
