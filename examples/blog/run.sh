#!/bin/bash
# The end-to-end check from the blog post "Kuberhealthy 一个还不错的健康检查 operator"
# (2021): log in to openbayes with its CLI, create a project and submit a task; the platform
# is healthy when every step succeeds.
#
# The post ended with a curl POST of {"OK": true} to $KH_REPORTING_URL, so a failing step
# reported nothing: v2 showed it as a timeout, without its reason. Here the check client
# reports both ways (it reads KH_REPORTING_URL, KH_RUN_UUID and KH_CHECK_RUN_DEADLINE, sends
# the kh-run-uuid header and retries until the deadline):
#   - every step succeeded: `kuberhealthy report --ok`;
#   - a step failed: the ERR trap reports its exit code and the step, as written (so the
#     token never appears), with `kuberhealthy report --error "..."`; then the script
#     exits with that code.
set -e

trap 'status=$?; kuberhealthy report --error "openbayes gear check failed with exit code $status at: $BASH_COMMAND"' ERR

bayes upgrade                                  # 更新命令行工具到最新
bayes switch test -e "$ENTRYPOINT"             # 切换 bayes 命令行的上下文
bayes login "$OPENBAYES_TOKEN"                 # 登录
bayes gear init healthcheck -m '自动测试项目'  # 创建项目
bayes gear run task --env "$RUNTIME" --resource "$RESOURCE" -f -- echo 123 # 提交任务

trap - ERR
kuberhealthy report --ok
