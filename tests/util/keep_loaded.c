/* Sanitizer builds only: dlclose does nothing, so shared objects stay mapped until exit.
 *
 * The Vulkan loader unloads the driver at vkDestroyInstance; lavapipe (through LLVM) keeps a few
 * heap blocks reachable only from its own globals, which LeakSanitizer then reports as leaks from an
 * "<unknown module>" that no suppression can name. Keeping the objects mapped keeps those blocks
 * reachable, while every allocation of this library is still checked. Linked into the program and
 * the tests (CMakeLists.txt, RWKV_SANITIZE with Vulkan); the executable's definition takes the place
 * of libc's for the loader, which references dlclose. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
