"""LocalStack ready hook: run Lambda functions with our init and a locally built image, no downloads.

Only when LAMBDA_INIT_BIN_PATH is set (docker-compose.yml sets it; host mode does not):
- LocalStack's Lambda service installs its runtime init from GitHub before the first function
  starts, even when LAMBDA_INIT_BIN_PATH replaces it afterwards. Our init
  (infra/localstack/lambda-init/init) is put where that installer looks, so nothing is downloaded;
- it pulls each runtime's image once before it creates a function. The image that
  LAMBDA_RUNTIME_IMAGE_MAPPING names for python3.13 is built here (infra/docker/lambda-python), so
  when the engine already has it, it is recorded as pulled.
Runs inside LocalStack's own Python (LocalStack execs ready.d/*.py in-process).
"""

import os
import platform
import shutil

init = os.environ.get("LAMBDA_INIT_BIN_PATH")
if init:
    from localstack.packages import InstallTarget
    from localstack.services.lambda_.invocation import docker_runtime_executor as executor
    from localstack.services.lambda_.packages import lambda_runtime_package
    from localstack.utils.container_utils.container_client import DockerPlatform

    installer = lambda_runtime_package.get_installer()
    if not installer.is_installed():
        install_dir = installer._get_install_dir(InstallTarget.VAR_LIBS)
        marker = installer._get_install_marker_path(install_dir)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        shutil.copy(init, marker)
        os.chmod(marker, 0o755)  # noqa: S103 (an executable, copied into each function container)
    print(f"reminders init: Lambda runtime init {init} installed as {installer.get_installed_dir()}")

    image = executor.resolver.get_image_for_runtime("python3.13")
    machine = DockerPlatform.linux_arm64 if platform.machine() in ("aarch64", "arm64") else DockerPlatform.linux_amd64
    try:
        executor.CONTAINER_CLIENT.inspect_image(image)
    except Exception as exc:  # any failure: LocalStack pulls it as usual
        print(f"reminders init: python3.13 image {image} is not here ({exc}); LocalStack will pull it")
    else:
        executor.PULLED_IMAGES.add((image, machine))
        print(f"reminders init: python3.13 functions run in {image} ({machine}), already here")
